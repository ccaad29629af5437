"""config/documents.yaml: the checklist's items, the two sides that chase them, and their words."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, model_validator

from tasks.config_files import read_yaml
from tasks.domain.form import Documents, FormError
from tasks.settings import get_settings

RECEIVED_SIDE = "documents"  # the receiving side's action: an item received counts as sent that day


class Side(BaseModel):
    prefix: str  # item lines are Action List codes `<prefix>:<item>`
    verb: str  # "Send", "Receive": the item line's title begins with it
    field: str  # the answer's field naming the items


class Item(BaseModel):
    words: str
    inspection_share: int | None = None  # percent, 002 App. 2


class DocumentRules(BaseModel):
    sides: dict[str, Side]  # action code -> its side
    items: dict[str, Item]
    aliases: dict[str, str] = {}
    measure: str
    measure_with_inspection: str

    @model_validator(mode="after")
    def _items_are_the_forms(self) -> DocumentRules:
        form_items = list(Documents.model_fields)
        if sorted(self.items) != sorted(form_items):
            raise ValueError(f"config/documents.yaml: items must be the form's checklist: {', '.join(form_items)}")
        if unknown := [a for a, item in self.aliases.items() if item not in self.items]:
            raise ValueError(f"config/documents.yaml: aliases name no item: {', '.join(unknown)}")
        return self


@lru_cache(maxsize=1)
def document_rules() -> DocumentRules:
    return DocumentRules.model_validate(read_yaml(get_settings().config_dir / "documents.yaml"))


def side_task(step: str, fields: dict[str, Any]) -> str:
    """`record REF documents --sent ...` answers the transferring side's task, `--received ...`
    the receiving side's. FormError when both are given: each side records its own."""
    if step.replace("-", "_") != RECEIVED_SIDE:
        return step
    named = [code for code, side in document_rules().sides.items() if side.field in fields]
    if len(named) > 1:
        given = " and ".join(f"--{document_rules().sides[c].field}" for c in named)
        raise FormError([(document_rules().sides[named[0]].field, f"give {given} apart: each side records its own items")])
    return named[0] if named else step


def item_named(name: str) -> str:
    """The item a name or alias means (unknown names are left for the form's own error)."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return document_rules().aliases.get(key, key)


def item_measures() -> list[dict[str, Any]]:
    """The Compliance sheet's measure per item (tasks/reports/compliance.py): its line received by
    its due date (the documents deadline), over the NSIs whose checklist holds it."""
    rules = document_rules()
    prefix = rules.sides[RECEIVED_SIDE].prefix
    return [
        {
            "measure": (rules.measure if item.inspection_share is None else rules.measure_with_inspection).format(
                words=item.words, share=item.inspection_share
            ),
            "done": f"{prefix}:{name}",
            "by_due": True,
        }
        for name, item in rules.items.items()
    ]

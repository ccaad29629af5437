"""The forms of the actions that ask more than "done" (tasks/domain/steps.py gives the others
`ActionDone`): the documents sent and received item by item, and the receiving SPO's decision on
the concerns the checks raised.

Each is a StepAnswer (tasks/domain/step_answer.py: who answers, the day the work was done), as
every step's form is, without importing the registry, which looks them up here.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field, field_validator

from tasks.domain.document_config import item_named
from tasks.domain.step_answer import StepAnswer


class DocumentItem(str, Enum):
    """The items of the form's documents checklist (tasks/domain/form.py Documents)."""

    assessment = "assessment"
    supervision_plan = "supervision_plan"
    order_or_licence = "order_or_licence"
    contact_log = "contact_log"
    absences_and_enforcement = "absences_and_enforcement"
    mappa_notes = "mappa_notes"
    vlo_information = "vlo_information"
    programme_reports = "programme_reports"


def _items(value: Any) -> Any:
    """`assessment,contact_log` (the command line) or a list; an alias names its item (config/documents.yaml)."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else [value]
    names = [p.strip() for part in parts for p in (part.split(",") if isinstance(part, str) else [part]) if p]
    return [item_named(n) if isinstance(n, str) else n for n in names if n != ""]


class DocumentsSent(StepAnswer):
    """Transferring side: the checklist's documents sent to the receiving area. Name the items sent
    (several at once); the task stays open, naming what is still to send, until every item is sent."""

    sent: list[DocumentItem] = Field(
        default_factory=list, description="The items sent, e.g. assessment,contact_log; leave empty when everything still to send has gone"
    )
    notes: str = Field("", max_length=4000)

    @field_validator("sent", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return _items(v)


class DocumentsReceived(StepAnswer):
    """Receiving side: the checklist's documents received. Name the items received (several at
    once); the task stays open, naming what is still missing, until every item is in. An item
    received counts as sent. (The transferring side records what it sent with --sent: its task
    is documents_sent.)"""

    received: list[DocumentItem] = Field(
        default_factory=list, description="The items received, e.g. assessment,contact_log; leave empty when everything still missing has arrived"
    )
    notes: str = Field("", max_length=4000)

    @field_validator("received", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return _items(v)


class ConcernsDecision(StepAnswer):
    """Receiving SPO: the checks raised concerns, or the address was assessed as unsuitable. Decide:
    proceed with a plan to manage them, ask for another address, or raise a challenge about risk.
    Completion waits for this decision."""

    outcome: Literal["proceed_with_plan", "another_address", "raise_challenge"]
    reasons: str = Field(..., min_length=1, max_length=4000, description="Why; when proceeding, the plan: the record of the decision")


# The action codes whose task asks these forms (config/timescales.yaml).
ACTION_FORMS: dict[str, type[StepAnswer]] = {
    "documents_sent": DocumentsSent,
    "documents": DocumentsReceived,
    "concerns_decision": ConcernsDecision,
}

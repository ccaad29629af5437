"""Go-live import: how a region's legacy tracker maps onto an NSI's fields (config/import_mapping.yaml,
with a region's own file of spellings on top), and the words compared however they are written."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tasks.config_files import read_yaml
from tasks.settings import get_settings

# The fields every tracker must have a column for, and every row a value in.
REQUIRED = ("crn", "date_of_birth", "from", "to", "notified_on")


class UnreadableTracker(ValueError):
    """The file cannot be read as a tracker at all (no such sheet, no header row)."""


def norm(value: Any) -> str:
    """Headers and words compared with case, spaces and punctuation ignored."""
    return re.sub(r"[^a-z0-9]", "", str(value or "").lower())


@dataclass(frozen=True)
class TrackerMapping:
    spellings: dict[str, str]  # normalised header -> field
    min_header_matches: int
    not_applicable: frozenset[str]
    yes: frozenset[str]
    caretaking: frozenset[str]
    sentence_types: dict[str, str]  # normalised -> SentenceType value
    rosh_levels: dict[str, str]
    rosh_when_not_high: str
    unknown_text: str
    unknown_postcode: str
    sentence_end_months: int
    mappa_category_when_unknown: int
    move_clock: str


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key == "columns":
            cols = {k: list(v) for k, v in base.get("columns", {}).items()}
            for f, spellings in (value or {}).items():
                cols.setdefault(f, []).extend(spellings or [])
            out["columns"] = cols
        else:
            out[key] = value
    return out


def _table(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {norm(s): target for target, spellings in groups.items() for s in [target, *spellings]}


@lru_cache(maxsize=8)
def load_mapping(path: Path | None = None) -> TrackerMapping:
    """The default mapping, with a region's file (same keys) added on top."""
    raw = read_yaml(get_settings().config_dir / "import_mapping.yaml")
    if path is not None:
        extra = read_yaml(path)
        if not isinstance(extra, dict):
            raise UnreadableTracker(f"{path}: a mapping file is a YAML mapping (see config/import_mapping.yaml)")
        unknown = set(extra.get("columns") or {}) - set(raw["columns"])
        if unknown:
            raise UnreadableTracker(
                f"{path}: columns: unknown fields {', '.join(sorted(unknown))}; fields: {', '.join(raw['columns'])}"
            )
        raw = _merge(raw, extra)
    if raw["move_clock_without_move_date"] != "notified":
        raise UnreadableTracker("move_clock_without_move_date: only 'notified' is supported")
    return TrackerMapping(
        spellings=_table(raw["columns"]) | {norm(f): f for f in raw["columns"]},
        min_header_matches=int(raw["min_header_matches"]),
        not_applicable=frozenset(norm(v) for v in raw["not_applicable"]) | {""},
        yes=frozenset(norm(v) for v in raw["yes_values"]),
        caretaking=frozenset(norm(v) for v in raw["caretaking"]),
        sentence_types=_table(raw["sentence_types"]),
        rosh_levels=_table(raw["rosh_levels"]),
        rosh_when_not_high=raw["rosh_when_not_high"],
        unknown_text=raw["unknown_text"],
        unknown_postcode=raw["unknown_postcode"],
        sentence_end_months=int(raw["sentence_end_months_when_unknown"]),
        mappa_category_when_unknown=int(raw["mappa_category_when_unknown"]),
        move_clock=raw["move_clock_without_move_date"],
    )

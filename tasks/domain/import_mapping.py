"""Go-live import: how a region's legacy tracker maps onto an NSI's fields (config/import_mapping.yaml,
with a region's own file of spellings on top), and the words compared however they are written.

Every value of a mapping file is checked before any row is read: a word list may be one word or a
list of them, a number must be a whole number, and anything else is refused naming its key
("columns.crn: 12345 is not a header or a list of headers"), never a traceback."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tasks.config_files import read_yaml
from tasks.settings import get_settings

# The fields every tracker must have a column for, and every row a value in.
REQUIRED = ("crn", "date_of_birth", "from", "to", "notified_on")
NSI_KINDS = ("transfer", "caretaking")
ROSH_LEVELS = ("Low", "Medium", "High", "Very High")
_WORD_LISTS = ("not_applicable", "yes_values", "caretaking", "transfer")
_GROUPS = ("sentence_types", "rosh_levels")
_TEXTS = ("rosh_when_not_high", "unknown_text", "unknown_postcode", "move_clock_without_move_date", "sentence_type_when_not_given")
_NUMBERS = ("min_header_matches", "sentence_end_months_when_unknown", "mappa_category_when_unknown")
KEYS = frozenset({"columns", *_WORD_LISTS, *_GROUPS, *_TEXTS, *_NUMBERS, "nsi_type_when_not_given", "caretaking_actions"})


class UnreadableTracker(ValueError):
    """The file cannot be read as a tracker at all (no such sheet, no header row), or the mapping is wrong."""


def norm(value: Any) -> str:
    """Headers and words compared with case, spaces and punctuation ignored."""
    return re.sub(r"[^a-z0-9]", "", str(value or "").lower())


@dataclass(frozen=True)
class TrackerMapping:
    spellings: dict[str, str]  # normalised header -> field
    columns: dict[str, tuple[str, ...]]  # field -> its spellings as written (for the dry run's suggestions)
    min_header_matches: int
    not_applicable: frozenset[str]
    not_applicable_words: tuple[str, ...]  # as written, for a history line's wording
    yes: frozenset[str]
    caretaking: frozenset[str]
    transfer: frozenset[str]
    nsi_type_when_not_given: str | None  # "transfer", "caretaking", or None: a bad row
    sentence_types: dict[str, str]  # normalised -> SentenceType value
    sentence_type_when_not_given: str
    rosh_levels: dict[str, str]
    rosh_when_not_high: str
    unknown_text: str
    unknown_postcode: str
    sentence_end_months: int
    mappa_category_when_unknown: int
    move_clock: str
    caretaking_actions: tuple[str, ...]  # action codes a caretaking row is measured on


def _words(key: str, value: Any, what: str = "a word or a list of words") -> list[str]:
    """One spelling or a list of them; a spelling with no letter or digit would match a blank cell."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise UnreadableTracker(f"{key}: {value!r} is not {what}")
    return [x for x in items if x.strip()]


def _spellings(key: str, value: Any) -> list[str]:
    out = _words(key, value, "a header or a list of headers")
    empty = [s for s in out if not norm(s)]
    if empty:
        raise UnreadableTracker(f"{key}: {empty[0]!r} has no letter or digit, so it would match a blank header")
    return out


def header_list(key: str, value: Any) -> list[str]:
    """A header or a list of headers, checked (shared with import-handovers' mapping)."""
    return _spellings(key, value)


def _whole(key: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UnreadableTracker(f"{key}: {value!r} is not a whole number of at least {least}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnreadableTracker(f"{key}: {value!r} is not a word or phrase")
    return value


def _group(key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise UnreadableTracker(f"{key}: give each {key[:-1].replace('_', ' ')} with its spellings (a mapping)")
    out = {}
    for target, spellings in value.items():
        if target not in allowed:
            raise UnreadableTracker(f"{key}.{target}: not one of {', '.join(allowed)}")
        out[target] = _spellings(f"{key}.{target}", spellings if spellings is not None else [])
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any], fields: list[str], where: str) -> dict[str, Any]:
    """A region's file on top of the default: its column spellings added, any other key replaced."""
    unknown_keys = sorted(set(extra) - KEYS)
    if unknown_keys:
        raise UnreadableTracker(f"{where}: unknown keys {', '.join(map(str, unknown_keys))}; keys: {', '.join(sorted(KEYS))}")
    out = dict(base)
    for key, value in extra.items():
        if key == "columns":
            if not isinstance(value, dict):
                raise UnreadableTracker(f"{where}: columns: give each field with its header or headers (a mapping)")
            unknown = sorted(set(map(str, value)) - set(fields))
            if unknown:
                raise UnreadableTracker(f"{where}: columns: unknown fields {', '.join(unknown)}; fields: {', '.join(fields)}")
            cols = {k: list(v) for k, v in base["columns"].items()}
            for f, spellings in value.items():
                cols[f] = cols[f] + _spellings(f"{where}: columns.{f}", spellings if spellings is not None else [])
            out["columns"] = cols
        else:
            out[key] = value
    return out


def _table(groups: Mapping[str, list[str]]) -> dict[str, str]:
    return {norm(s): target for target, spellings in groups.items() for s in [target, *spellings]}


@lru_cache(maxsize=8)
def load_mapping(path: Path | None = None) -> TrackerMapping:
    """The default mapping, with a region's file (same keys) added on top. Every value checked."""
    from tasks.domain.form import SentenceType

    default = get_settings().config_dir / "import_mapping.yaml"
    raw = read_yaml(default)
    columns = {f: _spellings(f"{default.name}: columns.{f}", v) for f, v in raw["columns"].items()}
    raw = {**raw, "columns": columns}
    if path is not None:
        extra = read_yaml(path)
        if extra is None:
            extra = {}
        if not isinstance(extra, dict):
            raise UnreadableTracker(f"{path}: a mapping file is a YAML mapping (see config/import_mapping.yaml)")
        raw = _merge(raw, extra, list(columns), str(path))
    where = f"{path or default}: "
    for key in (*_WORD_LISTS, *_GROUPS, *_TEXTS, *_NUMBERS, "caretaking_actions"):
        if key not in raw:
            raise UnreadableTracker(f"{where}{key}: missing")
    sentence_values = tuple(s.value for s in SentenceType)
    kind = raw.get("nsi_type_when_not_given")
    if kind is not None and kind not in NSI_KINDS:
        raise UnreadableTracker(f"{where}nsi_type_when_not_given: {kind!r} is not one of {', '.join(NSI_KINDS)} (or blank: a bad row)")
    if raw["move_clock_without_move_date"] != "notified":
        raise UnreadableTracker(f"{where}move_clock_without_move_date: only 'notified' is supported")
    if raw["rosh_when_not_high"] not in ROSH_LEVELS:
        raise UnreadableTracker(f"{where}rosh_when_not_high: {raw['rosh_when_not_high']!r} is not one of {', '.join(ROSH_LEVELS)}")
    if raw["sentence_type_when_not_given"] not in sentence_values:
        raise UnreadableTracker(
            f"{where}sentence_type_when_not_given: {raw['sentence_type_when_not_given']!r} is not one of {', '.join(sentence_values)}"
        )
    cols: dict[str, list[str]] = raw["columns"]
    not_applicable = _words(f"{where}not_applicable", raw["not_applicable"])
    return TrackerMapping(
        spellings=_table(cols) | {norm(f): f for f in cols},
        columns={f: tuple(v) for f, v in cols.items()},
        min_header_matches=_whole(f"{where}min_header_matches", raw["min_header_matches"], 1),
        not_applicable=frozenset(norm(v) for v in not_applicable) | {""},
        not_applicable_words=tuple(not_applicable),
        yes=frozenset(norm(v) for v in _words(f"{where}yes_values", raw["yes_values"])),
        caretaking=frozenset(norm(v) for v in _words(f"{where}caretaking", raw["caretaking"])),
        transfer=frozenset(norm(v) for v in _words(f"{where}transfer", raw["transfer"])),
        nsi_type_when_not_given=kind,
        sentence_types=_table(_group(f"{where}sentence_types", raw["sentence_types"], sentence_values)),
        sentence_type_when_not_given=raw["sentence_type_when_not_given"],
        rosh_levels=_table(_group(f"{where}rosh_levels", raw["rosh_levels"], ROSH_LEVELS)),
        rosh_when_not_high=raw["rosh_when_not_high"],
        unknown_text=_text(f"{where}unknown_text", raw["unknown_text"]),
        unknown_postcode=_text(f"{where}unknown_postcode", raw["unknown_postcode"]),
        sentence_end_months=_whole(f"{where}sentence_end_months_when_unknown", raw["sentence_end_months_when_unknown"], 1),
        mappa_category_when_unknown=_whole(f"{where}mappa_category_when_unknown", raw["mappa_category_when_unknown"], 1),
        move_clock=raw["move_clock_without_move_date"],
        caretaking_actions=tuple(_words(f"{where}caretaking_actions", raw["caretaking_actions"], "a list of action codes")),
    )


def recorded(text: str | None) -> str | None:
    """A name as recorded, or None where the import stood in for one the legacy tracker did not hold
    (unknown_text): emails then greet the team and say "not recorded", never the stand-in."""
    if text is None or not text.strip() or norm(text) == norm(load_mapping().unknown_text):
        return None
    return text

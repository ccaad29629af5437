"""The documents checklist chased item by item, on both sides (config/documents.yaml).

Each item the form marks becomes a line of the Action List under each side's action: `sent:ITEM`
under `documents_sent` (the transferring side) and `received:ITEM` under `documents` (the
receiving side), owned and due as that action. An answer to a side's task names the items done
(several at once); the task stays open, naming what is still missing, until every line under it is
done. Lines have no task of their own: they are the record, the reminders' words and the
tracker's measures. Functions over the NSI row, so the Transfer aggregate can call them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from tasks.domain.decisions import RuleBroken
from tasks.domain.document_config import RECEIVED_SIDE, Side, document_rules
from tasks.domain.steps import Effect
from tasks.store.models import Action, Nsi


def items_on(nsi: Nsi) -> list[str]:
    """The checklist items the NSI's form marks, in the checklist's order."""
    marked = (nsi.form or {}).get("documents") or {}
    return [item for item in document_rules().items if marked.get(item)]


def line_code(side: Side, item: str) -> str:
    return f"{side.prefix}:{item}"


def side_of_line(code: str) -> tuple[str, str] | None:
    """(side's action code, item) of an item line's code, or None for any other action."""
    prefix, _, item = code.partition(":")
    for action, side in document_rules().sides.items():
        if side.prefix == prefix and item in document_rules().items:
            return action, item
    return None


def _lines(nsi: Nsi, side_code: str) -> dict[str, Action]:
    side = document_rules().sides[side_code]
    return {item: a for item in document_rules().items if (a := _action(nsi, line_code(side, item))) is not None}


def _action(nsi: Nsi, code: str) -> Action | None:
    return next((a for a in nsi.actions if a.code == code), None)


def outstanding(nsi: Nsi, side_code: str) -> list[str]:
    """The items still open under a side's action."""
    return still_open(nsi.actions, side_code)


def still_open(actions: Iterable[Any], side_code: str) -> list[str]:
    """The items still open under a side's action, from its Action List (rows or views); [] for
    any other action."""
    rules = document_rules()
    side = rules.sides.get(side_code)
    if side is None:
        return []
    open_codes = {a.code for a in actions if a.status == "open"}
    return [item for item in rules.items if line_code(side, item) in open_codes]


def words(items: Iterable[str]) -> str:
    return ", ".join(document_rules().items[i].words for i in items)


def new_line(code: str, title: str, parent: Action) -> Action:
    return Action(code=code, title=title, owner_role=parent.owner_role, due_on=parent.due_on)


def plan_items(nsi: Any, make: Callable[[str, str, Any], Any] = new_line) -> None:
    """Each marked item's line under each side's action the NSI holds, owned and due as it.
    Idempotent: a line is planned once. `make` builds a line from its side's action (the demo
    seeder's drafts are not rows yet)."""
    rules = document_rules()
    have = {a.code for a in nsi.actions}
    items = items_on(nsi)
    for code, side in rules.sides.items():
        parent = _action(nsi, code)
        if parent is None:
            continue
        for item in items:
            if (c := line_code(side, item)) not in have:
                title = f"{side.verb} {rules.items[item].words}"
                nsi.actions.append(make(c, title, parent))
                have.add(c)


def check(nsi: Nsi, step: str, answer: dict[str, Any]) -> None:
    """The items an answer names must be on the NSI's checklist. RuleBroken names the field."""
    side = document_rules().sides.get(step)
    if side is None:
        return
    named = answer.get(side.field) or []
    lines = _lines(nsi, step)
    if off := [i for i in named if i not in lines]:
        listed = ", ".join(lines) or "none: the form marks no documents"
        raise RuleBroken(side.field, f"{', '.join(off)} is not on {nsi.reference}'s documents checklist; its items: {listed}")


def _done(line: Action | None, on: dt.date) -> bool:
    if line is None or line.status != "open":
        return False
    line.status, line.done_on = "done", on
    return True


def _finish_if_all_in(nsi: Nsi, side_code: str, on: dt.date) -> bool:
    """Close a side's action once every line under it is done; True when it closed now."""
    parent = _action(nsi, side_code)
    if parent is None or parent.status != "open" or outstanding(nsi, side_code):
        return False
    parent.status, parent.done_on = "done", on
    return True


def mark(nsi: Nsi, side_code: str, items: list[str], on: dt.date) -> tuple[list[str], list[str]]:
    """Mark these items done on `on` under a side (received ones sent too); (done now, done before)."""
    rules = document_rules()
    newly, before = [], []
    for item in dict.fromkeys(items):
        (newly if _done(_action(nsi, line_code(rules.sides[side_code], item)), on) else before).append(item)
        if side_code == RECEIVED_SIDE:
            for other, side in rules.sides.items():
                if other != side_code:
                    _done(_action(nsi, line_code(side, item)), on)
    return newly, before


def take(nsi: Nsi, step: str, effect: Effect) -> Effect:
    """The effect of an answer to a side's task once its items are marked: done when every line
    is in, else recorded as `<side> in part` with what is still missing (the task asks again)."""
    rules = document_rules()
    side = rules.sides.get(step)
    if side is None or not _lines(nsi, step):
        return effect  # the form marks no documents: the action is done as any other
    named = list(effect.answer.get(side.field) or []) or outstanding(nsi, step)  # none named: all that was missing
    newly, before = mark(nsi, step, named, effect.on)
    others = tuple(o for o in rules.sides if o != step and _finish_if_all_in(nsi, o, effect.on))
    if others:
        nsi.wake_seq += 1  # the other side's task closes: the transfer's run stops it when it wakes
    verb = side.field  # "sent", "received"
    parts = [f"{verb}: {words(newly) if newly else 'nothing new'}"]
    if before:
        parts.append(f"already recorded: {words(before)}")
    notes = effect.answer.get("notes") or ""
    if missing := outstanding(nsi, step):
        detail = "; ".join([*parts, f"still missing: {words(missing)}"]) + (f". {notes}" if notes else "")
        return replace(effect, detail=detail, pending=f"documents {verb} in part", finishes=())
    detail = "; ".join([*parts, "every item on the checklist is in"])
    return replace(effect, detail=f"documents {detail}" + (f". {notes}" if notes else ""))


def after_action_done(nsi: Nsi, code: str, on: dt.date) -> None:
    """An action marked done without its task (`action-done`): a side's action takes every line
    still open under it; the last line of a side closes the side's action."""
    rules = document_rules()
    if code in rules.sides:
        mark(nsi, code, outstanding(nsi, code), on)
        for other in rules.sides:
            _finish_if_all_in(nsi, other, on)
        return
    if (found := side_of_line(code)) is not None:
        side_code, item = found
        mark(nsi, side_code, [item], on)
        for other in rules.sides:
            _finish_if_all_in(nsi, other, on)


def fold(rows: list[Any]) -> list[Any]:
    """The digests' open actions with each NSI's open item lines folded into their side's line:
    one reminder naming the items still missing. A line whose side's action is not among the rows
    stays as it is."""
    rules = document_rules()
    parents = {(r.nsi_id, r.code): r for r in rows if r.code in rules.sides}
    missing: dict[tuple[int, str], list[str]] = {}
    kept = []
    for r in rows:
        found = side_of_line(r.code)
        if found is not None and (r.nsi_id, found[0]) in parents:
            missing.setdefault((r.nsi_id, found[0]), []).append(found[1])
            continue
        kept.append(r)
    return [
        replace(r, title=f"{r.title}: still missing {words(missing[(r.nsi_id, r.code)])}") if (r.nsi_id, r.code) in missing else r
        for r in kept
    ]

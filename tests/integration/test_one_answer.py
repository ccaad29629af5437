"""One answer to a step, as the store sees it: the NSI is read once, the answer checked once, and
everything it changes is written in one transaction (tasks/domain/transfer.py). Counted from the
statements the database driver is sent, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import demo_form
from sqlalchemy import event

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.store.session import get_engine

ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
READS_THE_NSI = re.compile(r"^\s*SELECT\b.*\bFROM nsi\b", re.IGNORECASE | re.DOTALL)


@dataclass
class Seen:
    statements: list[str] = field(default_factory=list)
    commits: int = 0
    rollbacks: int = 0

    def nsi_reads(self) -> list[str]:
        return [s for s in self.statements if READS_THE_NSI.match(s)]

    def writes(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]


@contextmanager
def counted(url: str) -> Iterator[Seen]:
    engine, seen = get_engine(url), Seen()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("PRAGMA"):
            seen.statements.append(statement)

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    def on_rollback(_conn: Any) -> None:
        seen.rollbacks += 1

    hooks = [("before_cursor_execute", on_statement), ("commit", on_commit), ("rollback", on_rollback)]
    for name, fn in hooks:
        event.listen(engine, name, fn)
    try:
        yield seen
    finally:
        for name, fn in hooks:
            event.remove(engine, name, fn)


def raised_and_opened(url: str) -> str:
    ref = transfers.register_nsi(parse_form(demo_form(raised_on="2026-12-14")), "one-answer", url=url)
    transfers.progress(ref, url)
    return ref


def test_recording_an_answer_reads_the_nsi_once_and_writes_it_in_one_transaction(store_url):
    ref = raised_and_opened(store_url)
    with counted(store_url) as seen:
        status = transfers.apply_step(ref, "allocation", ALLOCATION, url=store_url)
    assert status == "in_progress"
    assert len(seen.nsi_reads()) == 1, seen.nsi_reads()
    assert seen.commits == 1
    # The step, its actions planned from the allocation date, the task closed, the history: one write.
    assert len(seen.writes()) >= 4
    # Each of the NSI's collections is read at most once (no reload after planning).
    child_reads = [s for s in seen.statements if s.lstrip().upper().startswith("SELECT") and s not in seen.nsi_reads()]
    assert len(child_reads) <= 5, child_reads
    assert "allocation" in transfer_views.recorded_steps(ref, store_url)


def test_a_refused_answer_reads_the_nsi_once_and_writes_nothing(store_url):
    ref = raised_and_opened(store_url)
    with counted(store_url) as seen, pytest.raises(transfers.StepRefused, match="team_code"):
        transfers.apply_step(ref, "allocation", {**ALLOCATION, "team_code": "NOWHERE"}, url=store_url)
    assert len(seen.nsi_reads()) == 1 and seen.writes() == [] and seen.commits == 0


def test_an_answer_sent_from_the_command_line_is_validated_and_checked_in_one_read(store_url):
    ref = raised_and_opened(store_url)
    with counted(store_url) as seen:
        prepared = transfers.prepare_answer(ref, "allocation", dict(ALLOCATION), url=store_url)
    assert prepared.answer["practitioner"] == "Pat Receiver" and prepared.shape == 2 and prepared.attempts == 0
    assert len(seen.nsi_reads()) == 1 and seen.writes() == [] and seen.commits == 0


def test_the_same_answer_again_reads_once_and_changes_nothing(store_url):
    ref = raised_and_opened(store_url)
    transfers.apply_step(ref, "allocation", ALLOCATION, url=store_url)
    with counted(store_url) as seen:
        transfers.apply_step(ref, "allocation", ALLOCATION, url=store_url)
    assert len(seen.nsi_reads()) == 1 and seen.writes() == [] and seen.commits == 0

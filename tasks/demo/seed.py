"""Synthetic NSIs for demos and benchmarks, written straight into the store.

No flow runs: every row goes in through SQLAlchemy core `insert()` executemany, in chunks,
inside one transaction (a failure leaves nothing half-seeded). The numbers that shape the data
live in config/seed.yaml; the Action List comes from config/timescales.yaml through
tasks.domain.actions (`applies`, `due_date`), so seeded due dates are the ones a real flow would set.

Deterministic: every random draw is made up front from one numpy Generator, so the same
(n, seed, as_of) always gives the same rows. References are CT/TM + the NSI's real id, exactly
like tasks.domain.transfers.register_nsi, so they can never collide with NSIs raised for real.

The parts: tasks/demo/synthetic.py draws every NSI's columns and lifecycle, tasks/demo/transfer_forms.py
says what each form holds, tasks/demo/lifecycle.py takes each NSI through its steps in memory; this
module writes a chunk of them at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.demo.lifecycle import Drafted, draft_nsis
from tasks.demo.synthetic import generate
from tasks.domain.form import NsiType
from tasks.domain.policy import get_policy
from tasks.domain.transfers import REFERENCE_PREFIX
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.session import get_engine

CHUNK = 5000  # NSIs per executemany batch: bounds memory, keeps SQLite's bind-variable count low


class SeedExists(ValueError):
    """The store already holds NSIs from this seed."""


def _chunks(n: int) -> Iterator[range]:
    for lo in range(0, n, CHUNK):
        yield range(lo, min(n, lo + CHUNK))


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Plain executemany: SQLite runs it as a C loop; psycopg pipelines it. (SQLAlchemy's
    multi-row VALUES batches were slower on psycopg: it re-parses each 1000-row statement.)"""
    conn.execute(insert(table), rows)


class _Remembered(WorkingDayCalendar):
    """The calendar, remembering each (start, n) it has counted: 100k NSIs share a few hundred
    start days, and plan_actions counts one day at a time."""

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - bounded: it outlives the seeding (keyed by the calendar)
    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        return super().add_working_days(start, n)


def _insert_chunk(conn: Connection, drafted: Drafted) -> None:
    """A chunk's drafts into the store, each table with one executemany."""
    drafts, steps, history = drafted.nsis, drafted.steps, drafted.history
    nsi_rows = [{k: v for k, v in vars(d).items() if k != "actions"} for d in drafts]
    nsi = Nsi.__table__
    if conn.dialect.name == "postgresql":
        # Ids from the table's own sequence, so the references go in with the rows (no update).
        seq = conn.scalar(text("SELECT pg_get_serial_sequence('nsi', 'id')"))
        ids = sorted(conn.scalars(text("SELECT nextval(:seq) FROM generate_series(1, :k)"), {"seq": seq, "k": len(nsi_rows)}))
        for k, r in zip(ids, nsi_rows, strict=True):
            r["id"], r["reference"] = k, f"{REFERENCE_PREFIX[NsiType(r['nsi_type'])]}{k:06d}"
        _insert_many(conn, nsi, nsi_rows)
    else:
        ids = conn.execute(insert(nsi).returning(nsi.c.id, sort_by_parameter_order=True), nsi_rows).scalars().all()
        # updated_at is given again: the model's onupdate would stamp the wall clock (not deterministic).
        conn.execute(
            update(nsi).where(nsi.c.id == bindparam("b_id")).values(reference=bindparam("b_ref"), updated_at=bindparam("b_upd")),
            [
                {"b_id": k, "b_ref": f"{REFERENCE_PREFIX[NsiType(r['nsi_type'])]}{k:06d}", "b_upd": r["updated_at"]}
                for k, r in zip(ids, nsi_rows, strict=True)
            ],
        )
    # Actions in the order they were planned, as register_nsi and apply_step add them.
    _insert_many(
        conn,
        Action.__table__,
        [
            {
                "nsi_id": ids[j], "code": a.code, "title": a.title, "owner_role": a.owner_role, "due_on": a.due_on,
                "done_on": a.done_on, "status": a.status, "escalated_on": None,
            }
            for j, d in enumerate(drafts)
            for a in d.actions
        ],
    )  # fmt: skip
    if steps:
        _insert_many(conn, StepRecord.__table__, [{"nsi_id": ids[j], **r} for j, r in steps])
    _insert_many(conn, HistoryEntry.__table__, [{"nsi_id": ids[j], **r} for j, r in history])


def seed(n: int, seed: int = 0, as_of: dt.date | None = None, url: str | None = None, progress: Any = None) -> int:
    """Write n synthetic NSIs with their actions, step records and histories; returns n.

    Raises SeedExists when this seed was used on the store before (request keys are unique).
    `progress`, when given, is called with the number of NSIs written after each chunk.
    """
    if n < 0:
        raise ValueError("transfers: must be zero or more")
    settings = get_settings()
    as_of = as_of or settings.current_date()
    policy = get_policy(settings.profile)
    cal = get_calendar(settings.calendar)
    calendar = _Remembered(cal.name, cal.closures)
    syn = generate(n, seed, as_of, policy, calendar)
    engine = get_engine(url or settings.effective_database_url)
    nsi = Nsi.__table__
    with engine.begin() as conn:
        if conn.scalar(select(nsi.c.id).where(nsi.c.request_key == f"seed-{seed}-0")) is not None:
            raise SeedExists(f"seed: the store already holds NSIs from seed {seed}; use another --seed")
        for rows in _chunks(n):
            _insert_chunk(conn, draft_nsis(syn, rows, seed, policy, calendar, as_of))
            if progress is not None:
                progress(rows.stop)
    return n

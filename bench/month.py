"""A month of one large region, measured against a week: Prefect's database size before and after
retention, the nightly tracker's and reminders' wall times, and the runs list's p95.

    python bench/month.py [--per-week 2000] [--open 10000] [--open-api 20] [--periods 7,30]
                          [--list-calls 50] [--list-limit 10] [--workers 2] [--pg URL] [--redis URL]
    python bench/month.py --quick        # a day against a week, small volumes: a few minutes

Run by hand, not in CI. On the production profile (Prefect and the store on PostgreSQL, Redis,
the multi-server layout: bench/load.py's start_stack), in one stack that grows:

1. One shape-2 Case Transfer is driven from raise to completed for real (bench/load.py's drive):
   the template. Its Prefect rows (flow runs, their states, task runs and theirs, run inputs,
   artifacts, logs) and its store rows (the NSI, its actions, steps, waiting tasks, history) are
   then copied, in SQL inside each database, once per finished transfer of the volume below,
   each copy with its own ids, reference, CRN and every timestamp moved back to the day it
   closed. Ids are derived (md5 of the template's id and the copy's number), so the store's run
   ids point at the copy's runs and retention finds them as it finds real ones. The template
   completes with its work after the move still open (the OASys reassessment, plan review, court
   application and first appointment, which the bench does not answer); in a copy, run through,
   those actions and waiting tasks are done on its closing day (their runs stay as the template's).
   NOT copied: Prefect's events. Prefect deletes events after 7 days by itself
   (PREFECT_SERVER_EVENTS_RETENTION_PERIOD), so a week's and a month's database hold the same
   week of them; the template's own events are counted and reported per transfer instead.
2. The open transfers standing at any time: --open shape-2 transfers waiting after allocation
   (bench/load.py's hold: the first --open-api through the API, the rest copied row for row).
   The same number in both periods, so what grows is only the finished transfers' runs.
3. Period 1 (the baseline, a week): the transfers that closed on each of the last 7 days, plus
   the ones that closed on the day retention sweeps tonight (prefect_run_retention_days + 1
   days ago). Measured: Prefect's database size (pg_database_size), the runs list (POST
   /api/flow_runs/paginate, the UI's Runs page: newest first, START_TIME_DESC, --list-limit a
   page; --list-calls calls, unfiltered and for the past 7 days), the nightly tracker and the
   nightly reminders (their flows, run in this process against the stack as `casetransfer tracker`
   and `remind` run them), then retention (the prefect-retention flow) and the size again.
4. Period 2 (a month): the days up to 30 days ago added, and a fresh day for retention to sweep;
   the sent-log cleared so the reminders and the tracker's delivery do the same work again; the
   same measurements.

The volume: no source in this project gives a region's transfers a week (config/estate has the
estate but no caseloads; the HMI inspection in the seeds gives only a share, 13% of an area's
caseload transferred in or out). So it is the busiest figure the project already uses, once
(x1): 10,000 open transfers (bench/load.py, docs/production.md), which docs/production.md turns
into ~2,000 transfers closing a week (each open ~5 weeks). Hence --open 10000 --per-week 2000,
spread evenly over the days (286 a day). The machine is shared (a soak and other helpers): the
load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (bench/load.py: the stack, the driving and the holding it shares)

ROOT = load.ROOT
TODAY = dt.date.fromisoformat(load.TODAY)
# The Prefect tables a finished transfer leaves rows in, in an order that satisfies their foreign keys,
# and which rows of each belong to the template: (table, the column that ties a row to it, the set).
PREFECT_TABLES = [
    ("flow_run", "id", "_fr"),
    ("flow_run_state", "flow_run_id", "_fr"),
    ("task_run", "flow_run_id", "_fr"),
    ("task_run_state", "task_run_id", "_tr"),
    ("flow_run_input", "flow_run_id", "_fr"),
    ("artifact", "flow_run_id", "_fr"),
    ("log", "flow_run_id", "_fr"),
]
REMAPPED = {"id", "state_id", "flow_run_id", "task_run_id", "parent_task_run_id"}
# Written after the rows they point at exist (flow_run <-> flow_run_state point at each other),
# or unique across runs of a flow (an idempotency key).
NULLED = {("flow_run", "state_id"), ("task_run", "state_id"), ("flow_run", "idempotency_key")}


# --- the plan ---------------------------------------------------------------------------------


def closing_on(per_week: int, days_ago: int) -> int:
    """Transfers closing on the day `days_ago` days back, `per_week` spread evenly over the week."""
    return per_week * days_ago // 7 - per_week * (days_ago - 1) // 7


@dataclass(frozen=True)
class Period:
    name: str
    days: int
    added: tuple[tuple[int, int], ...]  # (days ago, transfers closed that day) added for this period
    swept: tuple[int, int]  # (days ago, transfers) of the day retention sweeps tonight


def plan(per_week: int, periods: list[int], retention_days: int) -> list[Period]:
    """Each period adds the days since the last one; each has a fresh day for retention to sweep."""
    if sorted(set(periods)) != periods or periods[0] < 1 or periods[-1] > retention_days:
        raise ValueError(f"--periods: increasing day counts from 1 to {retention_days} (the retention), got {periods}")
    out, before = [], 0
    for days in periods:
        added = tuple((d, closing_on(per_week, d)) for d in range(before + 1, days + 1))
        sweep_day = retention_days + 1
        out.append(Period(_name(days), days, added, (sweep_day, closing_on(per_week, sweep_day))))
        before = days
    return out


def _name(days: int) -> str:
    return {1: "a day", 7: "a week", 30: "a month"}.get(days, f"{days} days")


# --- the template -----------------------------------------------------------------------------


@dataclass
class Template:
    reference: str
    crn: str
    nsi_id: int
    flow_runs: list[str]
    events: int = 0
    events_bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def pg(url: str) -> str:
    """A SQLAlchemy URL as libpq takes it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def template_runs(prefect_db: str, store_url: str, reference: str) -> Template:
    """The template transfer's flow runs: the ones the store knows and any named or tagged for it."""
    import psycopg

    with psycopg.connect(pg(store_url)) as conn:
        nsi_id, crn, run = conn.execute("SELECT id, crn, flow_run_id FROM nsi WHERE reference = %s", (reference,)).fetchone()
        ids = {run, *(r for (r,) in conn.execute("SELECT flow_run_id FROM waiting_task WHERE nsi_id = %s", (nsi_id,)) if r)}
    with psycopg.connect(pg(prefect_db)) as conn:
        found = conn.execute(
            "SELECT id::text FROM flow_run WHERE id = ANY(%s::uuid[]) OR tags ? %s OR name ILIKE %s",
            (sorted(ids), reference, f"%{reference}%"),
        ).fetchall()
        t = Template(reference, crn, nsi_id, sorted({r for (r,) in found}))
        resources = [f"prefect.flow-run.{r}" for r in t.flow_runs]
        t.events, t.events_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(pg_column_size(e.*)), 0) FROM events e WHERE e.resource_id = ANY(%s) "
            "OR e.id IN (SELECT event_id FROM event_resources WHERE resource_id = ANY(%s))",
            (resources, resources),
        ).fetchone()
        (extra,) = conn.execute(
            "SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM event_resources r WHERE r.event_id IN "
            "(SELECT id FROM events e WHERE e.resource_id = ANY(%s) OR e.id IN "
            "(SELECT event_id FROM event_resources WHERE resource_id = ANY(%s)))",
            (resources, resources),
        ).fetchone()
        t.events_bytes += extra
    return t


# --- copying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    n: int  # the copy's NSI id, also what its ids are derived from
    reference: str
    crn: str
    days_ago: int


def _columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
        "AND is_generated = 'NEVER' ORDER BY ordinal_position",
        (table,),
    ).fetchall()


def _prefect_expr(table: str, col: str, kind: str) -> str:
    c = f't."{col}"'
    if (table, col) in NULLED:
        return "NULL"
    if col in REMAPPED and kind == "uuid":
        return f"CASE WHEN {c} IN (SELECT id FROM _tpl) THEN md5({c}::text || ':' || c.n)::uuid ELSE {c} END"
    if kind.startswith("timestamp"):
        return f"{c} - c.shift"
    # The reference as written, and lower case as in artifact keys; the CRN.
    if kind in ("text", "character varying"):
        return f"replace(replace(replace({c}, %(ref)s, c.ref), %(lref)s, lower(c.ref)), %(crn)s, c.crn)"
    if kind in ("json", "jsonb"):
        return f"replace(replace(replace({c}::text, %(ref)s, c.ref), %(lref)s, lower(c.ref)), %(crn)s, c.crn)::{kind}"
    return c


def copy_prefect(prefect_db: str, t: Template, copies: list[Copy], batch: int = 100) -> None:
    """The template's Prefect rows once per copy, in SQL inside Prefect's database."""
    import psycopg

    with psycopg.connect(pg(prefect_db)) as conn:
        conn.execute("CREATE TEMP TABLE _fr (id uuid PRIMARY KEY); CREATE TEMP TABLE _tr (id uuid PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE _tpl (id uuid PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE _c (n int, ref text, crn text, shift interval)")
        with conn.cursor().copy("COPY _fr (id) FROM STDIN") as cp:
            for r in t.flow_runs:
                cp.write_row((r,))
        conn.execute("INSERT INTO _tr SELECT id FROM task_run WHERE flow_run_id IN (SELECT id FROM _fr)")
        for table, tie, group in PREFECT_TABLES:
            conn.execute(
                f'INSERT INTO _tpl SELECT id FROM "{table}" WHERE {tie} IN (SELECT id FROM {group}) ON CONFLICT DO NOTHING'
            )
            if not t.rows.get(table):
                (t.rows[table],) = conn.execute(
                    f'SELECT count(*) FROM "{table}" WHERE {tie} IN (SELECT id FROM {group})'
                ).fetchone()
        statements = []
        for table, tie, group in PREFECT_TABLES:
            cols = _columns(conn, table)
            names = ", ".join(f'"{c}"' for c, _ in cols)
            exprs = ", ".join(_prefect_expr(table, c, k) for c, k in cols)
            statements.append(f'INSERT INTO "{table}" ({names}) SELECT {exprs} FROM "{table}" t CROSS JOIN _c c '
                              f"WHERE t.{tie} IN (SELECT id FROM {group})")  # fmt: skip
            if table in ("flow_run_state", "task_run_state"):  # each run's state, once its states exist
                run_table, run_group = ("flow_run", "_fr") if table == "flow_run_state" else ("task_run", "_tr")
                statements.append(
                    f"UPDATE {run_table} f SET state_id = md5(o.state_id::text || ':' || c.n)::uuid FROM {run_table} o, _c c "
                    f"WHERE o.id IN (SELECT id FROM {run_group}) AND o.state_id IS NOT NULL "
                    f"AND f.id = md5(o.id::text || ':' || c.n)::uuid"
                )
        conn.commit()
        for start in range(0, len(copies), batch):
            conn.execute("TRUNCATE _c")
            with conn.cursor().copy("COPY _c (n, ref, crn, shift) FROM STDIN") as cp:
                for k in copies[start : start + batch]:
                    cp.write_row((k.n, k.reference, k.crn, dt.timedelta(days=k.days_ago)))
            names = {"ref": t.reference, "lref": t.reference.lower(), "crn": t.crn}
            for sql in statements:
                conn.execute(sql, names if "%(" in sql else None)
            conn.commit()


def copy_store(store_url: str, t: Template, copies: list[Copy], batch: int = 500) -> None:
    """The template's NSI and its rows once per copy, in SQL inside the store's database: the copy's
    reference, CRN, run ids (derived as in copy_prefect) and every date moved back by its days."""
    import psycopg

    from tasks.store.models import Base, Nsi

    children = [tb.name for tb in Base.metadata.sorted_tables if "nsi_id" in tb.c and tb is not Nsi.__table__]
    with psycopg.connect(pg(store_url)) as conn:
        conn.execute("CREATE TEMP TABLE _tpl (id text PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE _c (n int, ref text, crn text, days int)")
        with conn.cursor().copy("COPY _tpl (id) FROM STDIN") as cp:
            for r in t.flow_runs:
                cp.write_row((r,))

        def expr(table: str, col: str, kind: str) -> str:
            c = f't."{col}"'
            fixed = {"reference": "c.ref", "crn": "c.crn", "request_key": "'month-' || c.ref", "nsi_id": "c.n"}
            if table == "nsi" and col == "id":
                return "c.n"
            if col in fixed and (table == "nsi" or col == "nsi_id"):
                return fixed[col]
            if col == "flow_run_id":
                return f"CASE WHEN {c} IN (SELECT id FROM _tpl) THEN md5({c} || ':' || c.n)::uuid::text ELSE {c} END"
            if kind == "date":
                return f"{c} - c.days"
            if kind.startswith("timestamp"):
                return f"{c} - make_interval(days => c.days)"
            return c

        statements = []
        for table in ["nsi", *children]:
            cols = [(c, k) for c, k in _columns(conn, table) if table == "nsi" or c != "id"]
            names = ", ".join(f'"{c}"' for c, _ in cols)
            tie = "id" if table == "nsi" else "nsi_id"
            statements.append(
                f'INSERT INTO "{table}" ({names}) SELECT {", ".join(expr(table, c, k) for c, k in cols)} '
                f'FROM "{table}" t CROSS JOIN _c c WHERE t.{tie} = {t.nsi_id}'
            )
        for start in range(0, len(copies), batch):
            conn.execute("TRUNCATE _c")
            with conn.cursor().copy("COPY _c (n, ref, crn, days) FROM STDIN") as cp:
                for k in copies[start : start + batch]:
                    cp.write_row((k.n, k.reference, k.crn, k.days_ago))
            for sql in statements:
                conn.execute(sql)
            # Run through means finished: what the template left open after completion (the work after
            # the move, which the bench does not answer) is done on the day the copy closed.
            conn.execute(
                "UPDATE action a SET status = 'done', done_on = n.closed_on FROM nsi n, _c c "
                "WHERE n.id = c.n AND a.nsi_id = n.id AND a.status = 'open'"
            )
            conn.execute("UPDATE waiting_task w SET status = 'done' FROM _c c WHERE w.nsi_id = c.n AND w.status = 'open'")
            conn.commit()
        conn.execute("SELECT setval(pg_get_serial_sequence('nsi', 'id'), (SELECT max(id) FROM nsi))")
        conn.commit()


def new_copies(store_url: str, t: Template, days: list[tuple[int, int]]) -> list[Copy]:
    """Numbered after the store's highest NSI id, references and CRNs made from the number."""
    import psycopg

    with psycopg.connect(pg(store_url)) as conn:
        (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM nsi").fetchone()
    prefix = t.reference[: len(t.reference) - 6]
    out, n = [], top
    for days_ago, count in days:
        for _ in range(count):
            n += 1
            out.append(Copy(n, f"{prefix}{n:06d}", f"M{n % 1_000_000:06d}", days_ago))
    return out


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Figures:
    period: str
    finished: int = 0  # finished transfers whose runs Prefect holds (template and copies, swept day included)
    open: int = 0
    flow_runs_before: int = 0
    flow_runs_after: int = 0
    prefect_mb_before: float = 0.0
    prefect_mb_after: float = 0.0
    store_mb: float = 0.0
    seed_s: float = 0.0
    list_p50_ms: float | None = None
    list_p95_ms: float | None = None
    list7_p50_ms: float | None = None
    list7_p95_ms: float | None = None
    tracker_s: float = 0.0
    reminders_s: float = 0.0
    reminders_sent: str = ""
    retention_s: float = 0.0
    retention_transfers: int = 0
    retention_runs: int = 0
    load_avg: list[float] = field(default_factory=list)


def db_mb(url: str) -> float:
    import psycopg

    with psycopg.connect(pg(url)) as conn:
        (size,) = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return size / 2**20


def flow_runs(prefect_db: str) -> int:
    import psycopg

    with psycopg.connect(pg(prefect_db)) as conn:
        return conn.execute("SELECT count(*) FROM flow_run").fetchone()[0]


def list_runs(api_url: str, calls: int, limit: int) -> tuple[list[float], list[float]]:
    """ms per call of the UI's Runs page: newest first, a page of `limit`; all time, and the past 7 days."""
    import httpx

    week_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).isoformat()
    bodies = [
        {"page": 1, "limit": limit, "sort": "START_TIME_DESC"},
        {"page": 1, "limit": limit, "sort": "START_TIME_DESC", "flow_runs": {"expected_start_time": {"after_": week_ago}}},
    ]
    out: tuple[list[float], list[float]] = ([], [])
    with httpx.Client(base_url=api_url, timeout=120) as http:
        for _ in range(calls):
            for body, times in zip(bodies, out, strict=True):
                started = time.perf_counter()
                http.post("/flow_runs/paginate", json=body).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
    return out


def forget_sent(store_url: str) -> None:
    """Clear the sent-log and the escalations (bench/reminders.py), so the next night does the same work."""
    import reminders as reminders_bench  # bench/reminders.py

    reminders_bench.forget_reminders(store_url)


def logs_settled(prefect_db: str, seconds: float = 120.0) -> None:
    """Prefect deletes a deleted run's logs in the background (docket): wait until the count stops moving."""
    import psycopg

    deadline, last = time.monotonic() + seconds, -1
    with psycopg.connect(pg(prefect_db), autocommit=True) as conn:
        while time.monotonic() < deadline:
            (now,) = conn.execute("SELECT count(*) FROM log").fetchone()
            if now == last:
                return
            last = now
            time.sleep(10)


def measure(f: Figures, stack: Any, prefect_db: str, store_url: str, base: Path, args: argparse.Namespace) -> None:
    from flows.nightly_reminders import nightly_reminders
    from flows.nightly_tracker import nightly_tracker
    from flows.retention import prefect_retention

    f.flow_runs_before, f.prefect_mb_before, f.store_mb = flow_runs(prefect_db), db_mb(prefect_db), db_mb(store_url)
    f.load_avg.append(os.getloadavg()[0])
    load.say(f"{f.period}: {f.flow_runs_before} flow runs, Prefect {f.prefect_mb_before:.0f} MB, store {f.store_mb:.0f} MB")
    all_time, week = list_runs(stack.api_url, args.list_calls, args.list_limit)
    f.list_p50_ms, f.list_p95_ms = load.pct(all_time, 50), load.pct(all_time, 95)
    f.list7_p50_ms, f.list7_p95_ms = load.pct(week, 50), load.pct(week, 95)
    load.say(f"{f.period}: runs list p95 {f.list_p95_ms:.0f} ms (past 7 days {f.list7_p95_ms:.0f} ms)")

    started = time.perf_counter()
    state = nightly_tracker(as_of=TODAY, out_dir=str(base / "trackers" / f.period.replace(" ", "-")), return_state=True)
    f.tracker_s = time.perf_counter() - started
    if not state.is_completed():
        raise RuntimeError(f"{f.period}: the nightly tracker ended {state.type}: {state.message}")
    f.load_avg.append(os.getloadavg()[0])
    load.say(f"{f.period}: nightly tracker {f.tracker_s:.1f} s")

    started = time.perf_counter()
    state = nightly_reminders(as_of=TODAY, return_state=True)
    f.reminders_s = time.perf_counter() - started
    summary = state.result(raise_on_failure=False)
    f.reminders_sent = "; ".join(getattr(getattr(summary, "summary", summary), "lines", lambda: [str(summary)])())[:200]
    f.load_avg.append(os.getloadavg()[0])
    load.say(f"{f.period}: nightly reminders {f.reminders_s:.1f} s ({f.reminders_sent})")

    started = time.perf_counter()
    state = prefect_retention(return_state=True)
    f.retention_s = time.perf_counter() - started
    done = state.result()
    f.retention_transfers, f.retention_runs = len(done), sum(done.values())
    f.load_avg.append(os.getloadavg()[0])
    load.say(f"{f.period}: retention {f.retention_s:.1f} s, {f.retention_transfers} transfers, {f.retention_runs} runs")
    logs_settled(prefect_db)
    f.flow_runs_after, f.prefect_mb_after = flow_runs(prefect_db), db_mb(prefect_db)
    load.say(f"{f.period}: after retention {f.flow_runs_after} flow runs, Prefect {f.prefect_mb_after:.0f} MB")


def table(figures: list[Figures], t: Template, args: argparse.Namespace) -> str:
    def fmt(v: float | None, spec: str = ".0f") -> str:
        return "–" if v is None else format(v, spec)

    rows = [
        ("finished transfers whose runs Prefect holds (incl. tonight's sweep)", lambda f: f"{f.finished:,}"),
        ("open transfers waiting after allocation", lambda f: f"{f.open:,}"),
        ("flow runs before / after retention", lambda f: f"{f.flow_runs_before:,} / {f.flow_runs_after:,}"),
        ("Prefect database before / after retention (MB)", lambda f: f"{f.prefect_mb_before:,.0f} / {f.prefect_mb_after:,.0f}"),
        ("store database (MB)", lambda f: f"{f.store_mb:,.0f}"),
        (
            f"runs list, UI Runs page ({args.list_limit} newest), p50 / p95 ms",
            lambda f: f"{fmt(f.list_p50_ms)} / {fmt(f.list_p95_ms)}",
        ),
        ("the same, past 7 days only, p50 / p95 ms", lambda f: f"{fmt(f.list7_p50_ms)} / {fmt(f.list7_p95_ms)}"),
        ("nightly tracker (flow, 12 regions + national) s", lambda f: f"{f.tracker_s:.1f}"),
        ("nightly reminders (flow) s", lambda f: f"{f.reminders_s:.1f}"),
        (
            "retention (flow) s / transfers / runs deleted",
            lambda f: f"{f.retention_s:.1f} / {f.retention_transfers} / {f.retention_runs}",
        ),
        ("load average (1 min) during the measurements", lambda f: " ".join(f"{x:.1f}" for x in f.load_avg)),
    ]
    head = f"| {args.per_week:,} transfers closing a week | " + " | ".join(
        f.period + (" (baseline)" if i == 0 else "") for i, f in enumerate(figures)
    ) + " |"  # fmt: skip
    lines = [head, "| --- |" + " --- |" * len(figures)]
    lines += [f"| {label} | " + " | ".join(get(f) for f in figures) + " |" for label, get in rows]
    per = ", ".join(f"{k} {v}" for k, v in t.rows.items())
    lines += [
        "",
        f"One finished transfer (the template, {t.reference}): {len(t.flow_runs)} flow runs; rows: {per}.",
        f"Its events (not copied; Prefect keeps 7 days of them): {t.events} events, {t.events_bytes / 1024:.0f} kB with their "
        f"resources; a week of {args.per_week:,} transfers ~{t.events_bytes * args.per_week / 2**20:.0f} MB in both periods.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a day against a week, 350 a week, 200 open: a few minutes")
    parser.add_argument("--per-week", type=int, default=2000, help="finished transfers a week (the project's busiest figure, x1)")
    parser.add_argument("--open", type=int, default=10_000, help="open transfers standing, the same in every period")
    parser.add_argument(
        "--open-api", type=int, default=20, help="of --open, made through the API, the rest copied (100 timed out at load 26)"
    )
    parser.add_argument("--periods", default="7,30", help="days of finished transfers, comma separated, growing")
    parser.add_argument("--list-calls", type=int, default=50)
    parser.add_argument("--list-limit", type=int, default=10, help="runs a page, as the UI's Runs page asks")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-timeout", type=float, default=900.0)
    parser.add_argument("--pg", default=os.environ.get("CASETRANSFER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("CASETRANSFER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "month")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_week, args.open, args.open_api, args.periods = 350, 200, 20, "1,7"
    # What bench/load.py's start_stack reads: the production profile as up-production runs it.
    args.server, args.start, args.worker_query_seconds = "split", "profile", None
    periods = [int(p) for p in args.periods.split(",")]

    base = Path(tempfile.mkdtemp(prefix="ct-month-"))
    load.say(f"starting the production stack in {base}")
    stack, drop = load.start_stack("production", base, args)
    prefect_db, store_url = drop
    try:
        from tasks.settings import get_settings

        phases = plan(args.per_week, periods, get_settings().prefect_run_retention_days)
        started = time.perf_counter()
        reference, _, _, _ = load.drive(0, load.base_form(), args.step_timeout, store_url)
        load.say(f"template {reference} driven to completed in {time.perf_counter() - started:.0f} s")
        time.sleep(15)  # its logs and task runs reach the database through the services, a little later
        t = template_runs(prefect_db, store_url, reference)
        started = time.perf_counter()
        load.hold(
            list(dict.fromkeys([stack.api_url, stack.engine_api_url])), store_url, args.open, True,
            prefect_db=prefect_db, api_limit=args.open_api, sources=[],
        )  # fmt: skip
        load.say(f"{args.open} open transfers held in {time.perf_counter() - started:.0f} s")
        figures: list[Figures] = []
        finished = 1
        for i, phase in enumerate(phases):
            f = Figures(phase.name, open=args.open)
            started = time.perf_counter()
            copies = new_copies(store_url, t, [*phase.added, phase.swept])
            copy_store(store_url, t, copies)
            copy_prefect(prefect_db, t, copies)
            f.seed_s = time.perf_counter() - started
            finished += len(copies)
            f.finished = finished
            load.say(f"{phase.name}: {len(copies)} finished transfers copied in {f.seed_s:.0f} s")
            if i:
                forget_sent(store_url)
            measure(f, stack, prefect_db, store_url, base, args)
            finished -= f.retention_transfers
            figures.append(f)
        report = table(figures, t, args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "month.md").write_text(report + "\n")
        print(report)
        return 0
    finally:
        stack.stop()
        if stack.redis_url:
            from ops.production import release_redis_db

            release_redis_db(stack.redis_url)
        from ops.production import drop_database

        for url in drop:
            drop_database(url)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

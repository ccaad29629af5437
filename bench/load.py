"""Load benchmark: shape-2 Case Transfers driven task by task through real flow runs, on both profiles.

    python bench/load.py [--profiles embedded,production] [--transfers 1000] [--held 10000]
                         [--held-api N] [--transfers-embedded N] [--held-embedded N] [--concurrency 8]
                         [--workers 2] [--start profile|prefork|direct|default]
                         [--server split|single] [--redis URL] [--out out/load]

Shape 2 with 10,000 open transfers, as measured on 3 December 2026 (docs/production.md):
    python bench/load.py --profiles production --transfers 30 --held 10000 --held-api 200 --concurrency 6
The full measurement on the sequential shape took 64 minutes on 2 cores (docs/production.md,
"Running for a whole region or the country"):
    python bench/load.py --profiles embedded,production --transfers 300 --held 10000 \
        --transfers-embedded 20 --held-embedded 1000 --concurrency 10

For each profile, in its own child process (so Prefect's settings and the CPU count are the
profile's own):

1. Start the stack: `embedded` is what `casetransfer up` runs (Prefect on SQLite, the store on
   SQLite, one worker); `production` is what `casetransfer up-production` runs (Prefect and the
   store on PostgreSQL, an API server for people and one for workers, the services in their own
   process, Redis between them, --workers workers), through ops.production.start_production.
   The production stack gets a Redis database of its own (ops.production.claim_redis_db).
2. Hold --held transfers as shape 2 has them once allocation is recorded, in five steps, listing
   after each: the transfer's run Suspended at `wake-1`, and a transfer-task run per task then open
   (address assessment, police and safeguarding checks, documents, handover, and the actions the
   form calls for), each Suspended at `<task-slug>-r1-0`. A real suspension costs a flow-run
   process start, and a held transfer is ~10 of them, so they are made at the API level instead:
   flow runs of the case-transfer and transfer-task deployments created (bulk endpoint, 100 a
   request) directly Suspended with the pause key a real run would have, with the store rows a
   real one has (the NSI on shape 2, its actions, step records, history and `waiting_task` rows
   with their runs' ids), cloned from a template NSI taken to that point by the store's own
   functions (tasks.domain.transfers.progress, apply_step). The server holds, times out and
   lists them as it would real suspended runs. They are VOLUME ONLY (tagged `held`): they carry
   no saved Resume form and never ran, so they are for measuring volume, not for answering.
   With --held-api N (production only), the first N are made through the API and the rest are
   copied from them row for row in Prefect's PostgreSQL database (copy_held_runs): 10,000 held
   transfers in ~2-3 minutes instead of ~90.
3. Drive --transfers transfers with --concurrency threads, each taking one transfer from raise to
   completed through the CLI's own code path: services.raise_transfer; allocation through
   services.send_answer(wait=False) once its task run is open; the five tasks after allocation,
   once all five are open, sent one after another in a shuffled order without waiting between
   them; completion once it opens. Meanwhile a thread lists suspended runs the way a dashboard
   would (POST /api/flow_runs/filter, state PAUSED, limit 200) every --list-interval seconds.

A step is one answer recorded. Its next suspension is the last run it wakes reaching its next
wait: the transfer's run suspended again by a segment that started after the answer was recorded
(or completed), and any task run that segment opened suspended at its form. All from the server's
own state timestamps and the history row apply_step wrote; when a segment that did read the answer
in time is followed by another, the later one counts (conservative).

Reported per profile: steps per minute (whole run, and the steady middle 80% of it), latency from
a step being sent to its next suspension (p50, p95), every run segment (each one a process start:
the transfer's run and every task run, each start and each resume) split into waiting for a
worker's poll, process start and the flow's work, CPU seconds per segment for server + workers +
flow-run processes (from /proc, reaped children included), the driver's own CPU (the CLI path),
PostgreSQL's and Redis's CPU (whole servers: other users of them count too), and the list latency
(idle and loaded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = "2026-12-21"  # pinned, as in the tests, so due dates and the calendar are stable
FORM = ROOT / "demo" / "forms" / "london-to-manchester.yaml"
TARGET_STEPS_PER_MIN = 30.0
TARGET_P95_STEP_S = 30.0
TARGET_LIST_P95_MS = 500.0
RAISED = "2026-12-14"  # a week before TODAY, so every answer is dated on the day its work was done (done_on)
# Shape 2: allocation; then these five at once (sent in a shuffled order); then completion.
ALLOCATION: tuple[str, dict[str, Any]] = (
    "allocation",
    {"practitioner": "Pat Receiver", "team_code": "N50CAD", "recorded_by": "Kim SPO", "done_on": "2026-12-15"},
)
AFTER_ALLOCATION: dict[str, dict[str, Any]] = {
    "address_assessment": {"method": "home_visit", "suitable": "true", "notes": "Room seen", "recorded_by": "Pat Receiver",
                           "done_on": "2026-12-18"},
    "police_checks": {"returned_on": "2026-12-16", "recorded_by": "Admin A"},
    "safeguarding_checks": {"done_on": "2026-12-17", "recorded_by": "Admin A"},
    "documents": {"done_on": "2026-12-16", "recorded_by": "Admin A"},
    "handover": {"held_on": "2026-12-18", "recorded_by": "Sam Practitioner"},
}  # fmt: skip
COMPLETION: tuple[str, dict[str, Any]] = (
    "completion",
    {"responsible_officer": "Pat Receiver", "recorded_by": "Kim SPO", "done_on": "2026-12-21"},
)
STEPS_PER_TRANSFER = 2 + len(AFTER_ALLOCATION)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PAUSED_FILTER = {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}, "limit": 200}


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- CPU from /proc -------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _procs() -> dict[int, tuple[int, str, float, float]]:
    """pid -> (ppid, comm, its own CPU seconds, CPU seconds of its reaped children)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        # fields 14-17 of proc(5): utime, stime, cutime, cstime (cutime/cstime: waited-for children)
        procs[int(name)] = (int(rest[1]), comm, (int(rest[11]) + int(rest[12])) / TICK, (int(rest[13]) + int(rest[14])) / TICK)
    return procs


def tree_cpu(servers: list[int], workers: list[int]) -> dict[str, float]:
    """CPU seconds of the server (with its children), the worker processes themselves, and the
    flow-run processes they started, living or reaped.

    A flow-run process that has exited was reaped by its worker, so its CPU is in the worker's
    cutime; one still running is found through its parent links."""
    procs = _procs()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in procs.items():
        children.setdefault(ppid, []).append(pid)

    def subtree(roots: list[int]) -> float:
        total, todo, seen = 0.0, list(roots), set()
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in procs:
                continue
            seen.add(pid)
            total += procs[pid][2] + procs[pid][3]
            todo.extend(children.get(pid, []))
        return total

    # The worker processes themselves (under a launcher, the worker is the launcher's child).
    own = 0.0
    for pid, (_, _, cpu, _) in procs.items():
        try:
            if b"worker\x00start" in Path(f"/proc/{pid}/cmdline").read_bytes() and _descends(pid, workers, procs):
                own += cpu
        except OSError:
            continue
    return {"server": subtree(servers), "workers": own, "runs": subtree(workers) - own}


def _descends(pid: int, roots: list[int], procs: dict[int, tuple[int, str, float, float]]) -> bool:
    while pid in procs and pid > 1:
        if pid in roots:
            return True
        pid = procs[pid][0]
    return False


def redis_cpu() -> float:
    """CPU seconds of the Redis server (the whole server: other users of it count too)."""
    return sum(cpu + children for _, comm, cpu, children in _procs().values() if comm.startswith("redis-server"))


def postgres_cpu() -> float:
    """CPU seconds of every postgres process (the postmaster's cutime holds its ended backends)."""
    return sum(cpu + children for _, comm, cpu, children in _procs().values() if comm.startswith("postgres"))


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat), every process counted."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb(roots: list[int]) -> float:
    """Resident memory of these processes and their living descendants."""
    procs = _procs()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return total / 2**20


# --- results --------------------------------------------------------------------------------


@dataclass
class StepSample:
    reference: str
    flow_run_id: str
    step: str
    sent: float  # wall clock (epoch s) when the answer was handed to send_answer
    resumed: float  # when send_answer returned (the run is Scheduled "Resuming")


@dataclass
class ProfileResult:
    profile: str
    workers: int
    worker_query_seconds: float
    engine: str
    server_layout: str
    transfers: int
    concurrency: int
    held: int
    held_seconds: float = 0.0
    held_runs: int = 0  # the held transfers' runs: each transfer's own and its suspended task runs
    held_via_api: int = 0  # of the held transfers, those made through the API (the rest are copies of them)
    failures: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)  # steps sent whose next suspension was not found
    workers_alive_at_end: int = 0  # a worker that died mid-run halves the capacity: say so
    # recover-transfers runs during the run: created (by the automations and the schedule), started
    # (each a process), done by the run holding its one slot instead (no process).
    recover_created: int = 0
    recover_started: int = 0
    recover_absorbed: int = 0
    steps: int = 0
    segments: int = 0
    opened_suspended: int = 0  # task runs opened already suspended: no process
    load_seconds: float = 0.0
    steps_per_min: float = 0.0
    steady_steps_per_min: float = 0.0
    step_p50_s: float | None = None
    step_p95_s: float | None = None
    step_max_s: float | None = None
    poll_wait_p50_s: float | None = None
    process_start_p50_s: float | None = None
    flow_work_p50_s: float | None = None
    raise_p50_s: float | None = None
    stack_cpu_s: float = 0.0
    server_cpu_per_segment_s: float = 0.0
    worker_cpu_per_segment_s: float = 0.0
    run_cpu_per_segment_s: float = 0.0
    cpu_per_segment_s: float = 0.0
    cpu_per_step_s: float = 0.0
    driver_cpu_per_step_s: float = 0.0
    postgres_cpu_per_step_s: float = 0.0
    redis_cpu_per_step_s: float = 0.0
    stack_rss_mb: float = 0.0
    # The machine while steps were driven: other processes (other users' tests, say) share the cores.
    cores: int = 0
    load_avg_p50: float | None = None
    load_avg_max: float | None = None
    machine_busy_s: float = 0.0
    others_cpu_s: float = 0.0  # busy CPU not spent by the stack, PostgreSQL, Redis or the driver
    list_idle_p50_ms: float | None = None
    list_idle_p95_ms: float | None = None
    list_loaded_p50_ms: float | None = None
    list_loaded_p95_ms: float | None = None
    list_loaded_samples: int = 0
    list_page_size: int = 0
    paused_runs_at_end: int = 0
    list_by_held: list[tuple[int, float | None, float | None]] = field(default_factory=list)  # (held, p50 ms, p95 ms) idle


# --- the stack ------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_stack(profile: str, base: Path, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """Start the profile's stack with this process pointed at it; returns (stack, databases to drop).

    Called before anything imports Prefect, so the environment set here is what Prefect's
    client settings read."""
    from ops.stack import Stack, free_port

    port = free_port()
    common = {
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # the postcode index built by `casetransfer up`
        "CASETRANSFER_TODAY": TODAY,
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
    }
    if args.worker_query_seconds:
        common["PREFECT_WORKER_QUERY_SECONDS"] = str(args.worker_query_seconds)
    drop: list[str] = []
    if profile == "production":
        from ops.production import production_urls

        tag = uuid.uuid4().hex[:8]
        urls = production_urls(args.pg, prefect_db=f"ct_load_prefect_{tag}", store_db=f"ct_load_store_{tag}")
        store_url, drop = urls.store, [urls.prefect, urls.store]
        from ops.production import claim_redis_db

        redis_url = claim_redis_db(args.redis) if args.server == "split" else None
    else:
        store_url = f"sqlite:///{base / 'store.sqlite'}"
    os.environ.update(
        {
            **common,
            "CASETRANSFER_DATABASE_URL": store_url,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_HOME": str(base / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from ops.production import STARTS, start_production

    # "profile": each profile's own choice (embedded: Prefect's default, production: prefork).
    start = args.start if args.start != "profile" else ("prefork" if profile == "production" else "default")
    if profile == "production":
        stack = start_production(
            base / "prefect",
            port,
            urls,
            workers=args.workers,
            env=common,
            start=start,
            redis_url=redis_url,
            engine_port=free_port() if redis_url else None,
        )
        return stack, drop
    if start == "prefork":
        raise SystemExit("--start prefork: the embedded profile (`casetransfer up`) has no launcher")
    engine = STARTS[start]
    from tasks.store.migrate import upgrade

    upgrade(store_url)
    stack = Stack(home=base / "prefect", port=port, env={**common, "CASETRANSFER_DATABASE_URL": store_url}, engine_command=engine)
    try:
        stack.start_server()
        stack.deploy()
        stack.start_worker("worker-1")  # `casetransfer up` runs one
    except BaseException:
        stack.stop()
        raise
    return stack, drop


def base_form() -> dict[str, Any]:
    import yaml

    from tasks.domain.form import parse_form

    return parse_form({**yaml.safe_load(FORM.read_text()), "raised_on": RAISED}).model_dump(mode="json")


def template_after_allocation(form: dict[str, Any], tag: str) -> tuple[str, int, list[str]]:
    """One NSI taken, in the store only, to where a real shape-2 transfer stands once allocation is
    recorded and its run has woken: (reference, the wake key its run suspends at, the tasks open).

    The same calls the flows make: progress opens allocation, apply_step records it (wake_seq 1),
    task_done once its run has woken the transfer, and the woken run's progress opens the tasks
    after allocation and marks 1 seen (a resumed run starts from the top, reads, and suspends at
    the new key `wake-1`)."""
    from tasks.domain import steps as registry
    from tasks.domain import transfer_views, transfers
    from tasks.domain.form import parse_form
    from tasks.settings import get_settings

    reference = transfers.register_nsi(parse_form({**form, "crn": "H000000"}), f"held-template-{tag}", flow_run_id="template")
    if transfer_views.shape_of(reference) < 2:
        raise SystemExit(f"{reference} was raised on shape {transfer_views.shape_of(reference)}: this bench measures shape 2")
    transfers.progress(reference)
    transfers.task_started(reference, "allocation", 1, "template-allocation")
    policy, raised_on = transfer_views.policy_of(reference), transfer_views.status_of(reference).raised_on
    answer = registry.validate_answer("allocation", dict(ALLOCATION[1]), policy, get_settings().current_date(), raised_on)
    transfers.apply_step(reference, "allocation", answer.model_dump(mode="json"), flow_run_id="template-allocation")
    transfers.task_done(reference, "allocation", 1)  # its run has woken the transfer: "recorded" becomes "done"
    opened = transfers.progress(reference)
    return reference, opened.seen, [t.task for t in opened.to_start]


def copy_held_runs(prefect_db: str, copies: list[tuple[str, str, dict[str, Any], list[str]]]) -> list[str]:
    """Copy API-made held runs in Prefect's own PostgreSQL database: (source run id, name, parameters, tags).

    Each copy is the source's flow_run row and its current flow_run_state row, with a new id, name,
    parameters and tags and everything else (deployment, flow, work queue, state type, pause key and
    timeout, labels, empirical policy) as the API wrote it. What the API also writes and a copy lacks:
    the `prefect.flow-run.*` events of its creation. Creating runs through the API is CPU-bound in the
    server (~17 runs/s on this machine), so 10,000 held transfers (~90,000 runs) would take ~90 min;
    copying takes seconds. Listing and the server's own services see the copies as they see any run.
    Returns the new runs' ids, in the order of `copies`."""
    from sqlalchemy import MetaData, Table, bindparam, create_engine, select, update
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(prefect_db).set(drivername="postgresql+psycopg"))
    made: list[str] = []
    try:
        meta = MetaData()
        runs = Table("flow_run", meta, autoload_with=engine)
        states = Table("flow_run_state", meta, autoload_with=engine)
        with engine.begin() as conn:
            ids = list({uuid.UUID(src) for src, _, _, _ in copies})
            source = {str(r["id"]): dict(r) for r in conn.execute(select(runs).where(runs.c.id.in_(ids))).mappings()}
            state_ids = [r["state_id"] for r in source.values()]
            source_state = {
                str(r["flow_run_id"]): dict(r) for r in conn.execute(select(states).where(states.c.id.in_(state_ids))).mappings()
            }
            now = dt.datetime.now(dt.UTC)
            for start in range(0, len(copies), 2000):
                new_runs, new_states, links = [], [], []
                for src, name, parameters, tags in copies[start : start + 2000]:
                    run_id, state_id = uuid.uuid4(), uuid.uuid4()
                    run = {**source[src], "id": run_id, "name": name, "parameters": parameters, "tags": tags,
                           "state_id": None, "idempotency_key": None, "created": now, "updated": now}  # fmt: skip
                    state = {**source_state[src], "id": state_id, "flow_run_id": run_id, "created": now, "updated": now}
                    new_runs.append(run)
                    new_states.append(state)
                    links.append({"rid": run_id, "sid": state_id})
                # flow_run.state_id and flow_run_state.flow_run_id point at each other: runs, states, then the link.
                conn.execute(runs.insert(), new_runs)
                conn.execute(states.insert(), new_states)
                conn.execute(update(runs).where(runs.c.id == bindparam("rid")).values(state_id=bindparam("sid")), links)
                made.extend(str(r["id"]) for r in new_runs)
    finally:
        engine.dispose()
    return made


def hold(
    api_urls: list[str],
    store_url: str,
    n: int,
    stack_is_postgres: bool,
    prefect_db: str | None = None,
    api_limit: int | None = None,
    sources: list[tuple[str, dict[str, str]]] | None = None,
) -> int:
    """n API-level shape-2 transfers waiting after allocation; returns the flow runs made.

    For each: the transfer's run Suspended at `wake-<n>`, and a transfer-task run per task open
    after allocation, each Suspended at `<task-slug>-r1-0`, as real ones would be; and the store
    rows a real one has (NSI on shape 2, actions, step records, history, waiting_task rows with
    their runs' ids), cloned from a template taken there by the store's own functions. The
    allocation task run itself (Completed in a real transfer) is not made: its row has no run.

    VOLUME ONLY: no run carries a saved Resume form and no process ever ran for them; they are
    for measuring what the server and the store hold and list, never for answering. Tagged `held`.

    The batches go round the API servers given: creating a run is CPU-bound in the server
    (Prefect validates its parameters against the deployment's schema). With `prefect_db` (PostgreSQL),
    only the first `api_limit` held transfers over all calls are made through the API (recorded in
    `sources`); the rest are copies of those, row for row, in Prefect's database (copy_held_runs)."""
    import httpx
    from sqlalchemy import delete, func, insert, select, text

    from tasks.domain.policy import get_policy
    from tasks.store.models import Base, Nsi
    from tasks.store.session import get_engine

    if n <= 0:
        return 0
    form = base_form()
    tag = uuid.uuid4().hex[:8]
    template, wake, tasks = template_after_allocation(form, tag)
    nsi_t = Nsi.__table__
    # Every table hanging off the NSI (actions, step records, waiting tasks, history...), cloned.
    children = [t for t in Base.metadata.sorted_tables if "nsi_id" in t.c and t is not nsi_t]
    engine = get_engine(store_url)
    with engine.begin() as conn:
        row = dict(conn.execute(select(nsi_t).where(nsi_t.c.reference == template)).mappings().one())
        rows = {t: [dict(r) for r in conn.execute(select(t).where(t.c.nsi_id == row["id"])).mappings()] for t in children}
        for t in reversed(children):
            conn.execute(delete(t).where(t.c.nsi_id == row["id"]))
        conn.execute(delete(nsi_t).where(nsi_t.c.id == row["id"]))
        first_id = (conn.scalar(select(func.max(nsi_t.c.id))) or 0) + 1
    prefix = template[: len(template) - 6]

    timeout = (dt.datetime.now(dt.UTC) + dt.timedelta(days=get_policy().suspend_timeout_days)).isoformat()

    def suspended(key: str) -> dict[str, Any]:
        return {
            "type": "PAUSED",
            "name": "Suspended",
            "state_details": {"pause_key": key, "pause_reschedule": True, "pause_timeout": timeout},
        }

    crns = [f"H{(first_id + i) % 1_000_000:06d}" for i in range(n)]
    refs = [f"{prefix}{first_id + i:06d}" for i in range(n)]
    clients = [httpx.Client(base_url=url, timeout=120) for url in api_urls]
    try:
        deployments = {
            name: clients[0].get(f"/deployments/name/{name}/{name}").raise_for_status().json()["id"]
            for name in ("case-transfer", "transfer-task")
        }

        def create(job: tuple[int, str, list[dict[str, Any]]]) -> list[str]:
            k, deployment, batch = job
            http = clients[k % len(clients)]
            made: dict[int, str] = {}
            for attempt in range(8):
                todo = [j for j in range(len(batch)) if j not in made]
                if not todo:
                    break
                body = [batch[j] for j in todo]
                results = http.post(f"/deployments/{deployment}/create_flow_run/bulk", json=body).raise_for_status().json()
                for j, r in zip(todo, results["results"], strict=True):
                    if r["status"] == "CREATED":
                        made[j] = r["flow_run_id"]
                    elif "database is locked" not in str(r.get("error")):
                        raise RuntimeError(f"bulk create refused {batch[j]['name']}: {r}")
                # SQLite: the server's own services (events) hold the write lock at times; retry.
                time.sleep(0.5 * (attempt + 1) if len(made) < len(batch) else 0)
            if len(made) < len(batch):
                raise RuntimeError(f"bulk create: {len(batch) - len(made)} runs not created after retries")
            return [made[j] for j in range(len(batch))]

        # SQLite takes one writer at a time: one request at a time, in smaller transactions.
        size, threads = (100, 2 * len(clients)) if stack_is_postgres else (25, 1)

        def bulk(deployment: str, bodies: list[dict[str, Any]]) -> list[str]:
            jobs = [(k, deployment, bodies[i : i + size]) for k, i in enumerate(range(0, len(bodies), size))]
            with ThreadPoolExecutor(threads) as pool:
                return [run_id for ids in pool.map(create, jobs) for run_id in ids]

        via_api = n if prefect_db is None or sources is None else max(0, min(n, (api_limit or 0) - len(sources)))
        if not via_api and not sources:
            raise ValueError("hold: nothing made through the API to copy from (--held-api must be at least 1)")
        # The runs' names and parameters carry the reference, as a real transfer's do.
        transfer_runs = bulk(
            deployments["case-transfer"],
            [
                {"name": f"transfer-{refs[i]}", "parameters": {"reference": refs[i]}, "state": suspended(f"wake-{wake}"),
                 "tags": ["held"]}
                for i in range(via_api)
            ],
        )  # fmt: skip
        owner = {r["task"]: r["owner_role"] for t, rs in rows.items() if t.name == "waiting_task" for r in rs}

        def task_run(i: int, task: str) -> tuple[str, dict[str, Any], list[str]]:
            return (f"{task.replace('_', '-')}-{refs[i]}", {"reference": refs[i], "task": task, "round": 1},
                    [refs[i], f"owner:{owner[task]}", "held"])  # fmt: skip

        pairs = [(i, task) for i in range(via_api) for task in tasks]
        task_ids = bulk(
            deployments["transfer-task"],
            [
                {"name": name, "parameters": parameters, "state": suspended(f"{task.replace('_', '-')}-r1-0"), "tags": tags}
                for i, task in pairs
                for name, parameters, tags in [task_run(i, task)]
            ],
        )
        task_runs = dict(zip(pairs, task_ids, strict=True))
        if sources is not None:
            sources += [(transfer_runs[i], {task: task_runs[(i, task)] for task in tasks}) for i in range(via_api)]
        if via_api < n:
            assert prefect_db is not None and sources
            picks = {i: sources[(i - via_api) % len(sources)] for i in range(via_api, n)}
            transfer_runs += copy_held_runs(
                prefect_db, [(picks[i][0], f"transfer-{refs[i]}", {"reference": refs[i]}, ["held"]) for i in range(via_api, n)]
            )
            copied = [(i, task) for i in range(via_api, n) for task in tasks]
            task_runs.update(
                zip(
                    copied,
                    copy_held_runs(prefect_db, [(picks[i][1][task], *task_run(i, task)) for i, task in copied]),
                    strict=True,
                )
            )
    finally:
        for client in clients:
            client.close()

    with engine.begin() as conn:
        for start in range(0, n, 500):
            nsis: list[dict[str, Any]] = []
            clones: dict[Any, list[dict[str, Any]]] = {t: [] for t in children}
            for i in range(start, min(n, start + 500)):
                nsi_id, crn = first_id + i, crns[i]
                nsis.append(
                    {
                        **row,
                        "id": nsi_id,
                        "reference": refs[i],
                        "request_key": f"held-{tag}-{i}",
                        "crn": crn,
                        "form": {**row["form"], "crn": crn},
                        "flow_run_id": transfer_runs[i],
                    }
                )
                for t, template_rows in rows.items():
                    for r in template_rows:
                        clone = {k: v for k, v in r.items() if k != "id"}
                        clone["nsi_id"] = nsi_id
                        if t.name == "waiting_task":  # each open task has its run; allocation's is not made
                            clone["flow_run_id"] = task_runs.get((i, clone["task"]))
                        elif clone.get("flow_run_id"):
                            clone["flow_run_id"] = transfer_runs[i]
                        clones[t].append(clone)
            conn.execute(insert(nsi_t), nsis)
            for t in children:
                if clones[t]:
                    conn.execute(insert(t), clones[t])
        if engine.dialect.name == "postgresql":
            # Explicit ids leave the sequence behind: move it on, or the next real NSI collides.
            conn.execute(text("SELECT setval(pg_get_serial_sequence('nsi', 'id'), (SELECT max(id) FROM nsi))"))
    return n * (1 + len(tasks))


def list_latency(http: Any) -> tuple[float, int]:
    """(ms, runs on the page) for one page of suspended runs."""
    started = time.perf_counter()
    response = http.post("/flow_runs/filter", json=PAUSED_FILTER)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, len(response.json())


class Lister(threading.Thread):
    """Lists suspended runs every `interval` seconds, as a dashboard or the UI would, until stopped."""

    def __init__(self, api_url: str, interval: float):
        super().__init__(daemon=True)
        self.api_url, self.interval = api_url, interval
        self.latencies: list[float] = []
        self.page = 0
        self.errors = 0
        self.load: list[float] = []  # the 1-minute load average at each listing
        self.stop = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.api_url, timeout=60) as http:
            while not self.stop.is_set():
                try:
                    ms, self.page = list_latency(http)
                    self.latencies.append(ms)
                except Exception:
                    self.errors += 1
                self.load.append(os.getloadavg()[0])
                self.stop.wait(self.interval)


def _holds(predicate: Callable[[], bool]) -> bool:
    """The predicate, with the store or the API briefly unreachable (bench/soak.py cuts them) read as "not yet"."""
    import httpx
    from sqlalchemy.exc import OperationalError

    try:
        return predicate()
    except (OperationalError, httpx.TransportError):
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)  # ten of these polling the store take CPU from the stack being measured


def open_runs(store_url: str, reference: str) -> dict[str, str]:
    """task -> flow run id of the transfer's open waiting tasks that have their run (one query)."""
    from sqlalchemy import select

    from tasks.store.models import Nsi, WaitingTask
    from tasks.store.session import get_engine

    query = (
        select(WaitingTask.task, WaitingTask.flow_run_id)
        .join(Nsi, Nsi.id == WaitingTask.nsi_id)
        .where(Nsi.reference == reference, WaitingTask.status == "open", WaitingTask.flow_run_id.is_not(None))
    )
    with get_engine(store_url).connect() as conn:
        return {task: run_id for task, run_id in conn.execute(query)}


def drive(
    i: int, form: dict[str, Any], timeout: float, store_url: str, after_send: Callable[[str, str, dict[str, Any]], None] | None = None
) -> tuple[str, str, float, list[StepSample]]:
    """One transfer from raise to completed, through the CLI's code path: allocation once its task
    is open; then the five tasks after allocation, once all five are open, in a shuffled order
    without waiting between them; then completion once it opens."""
    import httpx
    from sqlalchemy.exc import OperationalError

    from services import raise_transfer, send_answer
    from tasks.domain import transfer_views
    from tasks.domain.form import parse_form
    from tasks.domain.transfers import StepRefused

    rng = random.Random(i)
    raised = time.time()
    reference, run_id = raise_transfer(parse_form({**form, "crn": f"L{i:06d}"}))
    samples = []

    def send(step: str, answer: dict[str, Any]) -> None:
        sent = time.time()
        for attempt in range(4):
            # A person told "could not reach the database" tries again; an answer that did land
            # the first time is then refused as already given, which is what they want to know.
            try:
                send_answer(reference, step, dict(answer), wait=False, timeout=timeout)
                break
            except StepRefused:
                if attempt == 0:
                    raise
                break
            except (OperationalError, httpx.TransportError):
                if attempt == 3:
                    raise
                time.sleep(5)
        samples.append(StepSample(reference, run_id, step, sent, time.time()))
        if after_send:
            after_send(reference, step, answer)  # bench/soak.py: the same answer again, from a second person

    wait_until(lambda: "allocation" in open_runs(store_url, reference), timeout, f"{reference}: allocation open")
    send(*ALLOCATION)
    wait_until(
        lambda: set(AFTER_ALLOCATION) <= set(open_runs(store_url, reference)), timeout, f"{reference}: the five tasks open"
    )
    for step in rng.sample(sorted(AFTER_ALLOCATION), len(AFTER_ALLOCATION)):
        send(step, AFTER_ALLOCATION[step])
    wait_until(lambda: "completion" in open_runs(store_url, reference), timeout, f"{reference}: completion open")
    send(*COMPLETION)
    wait_until(lambda: transfer_views.nsi_status(reference)[0] == "completed", timeout, f"{reference} completed")
    # The store says completed as soon as completion is recorded; the transfer's run ends a wake-up
    # later, and that end is the completion step's "next suspension": wait for it, or it goes unmeasured.
    with httpx.Client(base_url=os.environ["PREFECT_API_URL"], timeout=60) as http:
        wait_until(
            lambda: http.get(f"/flow_runs/{run_id}").raise_for_status().json()["state"]["type"] in FINAL,
            timeout,
            f"{reference}: its run ended",
        )
    return reference, run_id, raised, samples


def recorded_at(store_url: str, reference: str) -> dict[str, float]:
    """step -> when its answer was recorded (the history entry apply_step wrote), epoch s."""
    from sqlalchemy import select

    from tasks.store.models import HistoryEntry, Nsi
    from tasks.store.session import get_engine

    query = select(HistoryEntry.event, HistoryEntry.at).join(Nsi, Nsi.id == HistoryEntry.nsi_id).where(Nsi.reference == reference)
    found: dict[str, float] = {}
    with get_engine(store_url).connect() as conn:
        for event, at in conn.execute(query):
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite keeps UTC without its zone
            found.setdefault(event, at.timestamp())
    return found


def _ts(state: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(state["timestamp"]).timestamp()


def run_states(http: Any, run_id: str) -> list[dict[str, Any]]:
    states = http.get("/flow_run_states/", params={"flow_run_id": run_id}).raise_for_status().json()
    return sorted(states, key=_ts)


def first_after(states: list[dict[str, Any]], after: float, types: set[str], name: str | None = None) -> float | None:
    for s in states:
        if _ts(s) >= after and s["type"] in types and (name is None or s["name"] == name):
            return _ts(s)
    return None


ENDS = {"PAUSED", "COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def segments(states: list[dict[str, Any]]) -> list[tuple[float | None, float | None, float, float | None]]:
    """(scheduled, pending, running, end) of each segment of a run: each one a process start."""
    found = []
    for k, s in enumerate(states):
        if s["type"] != "RUNNING":
            continue
        # Only this segment's own states: those since the last suspension or end before it.
        last_end = max((j for j in range(k) if states[j]["type"] in ENDS), default=-1)
        before = states[last_end + 1 : k]
        pending = next((_ts(b) for b in reversed(before) if b["type"] == "PENDING"), None)
        scheduled = next(
            (_ts(b) for b in reversed(before) if b["type"] == "SCHEDULED" and (pending is None or _ts(b) <= pending)), None
        )
        end = next((_ts(a) for a in states[k + 1 :] if a["type"] in ENDS), None)
        found.append((scheduled, pending, _ts(s), end))
    return found


def reacted(transfer: list[dict[str, Any]], recorded: float) -> float | None:
    """When the transfer's run, having read an answer recorded at `recorded`, suspended again (or
    finished). Its first suspension after it is the one only if that segment started after it (a
    segment under way may have read the store just before: then the wake-up makes another).
    Conservative: a segment that did read it in time but was followed by another counts the later."""
    ends = []
    for _, _, running, end in segments(transfer):
        if end is not None and end > recorded:
            ends.append((running, end))
    later = next((end for running, end in ends if running > recorded), None)
    return later if later is not None else (ends[0][1] if ends else None)


def run_profile(profile: str, args: argparse.Namespace) -> ProfileResult:
    base = Path(tempfile.mkdtemp(prefix=f"ct-load-{profile}-"))
    say(f"{profile}: starting the stack in {base}")
    stack, drop = start_stack(profile, base, args)
    import httpx

    result = ProfileResult(
        profile=profile,
        workers=len(stack.workers),
        worker_query_seconds=float(stack.child_env()["PREFECT_WORKER_QUERY_SECONDS"]),
        engine="prefork" if stack.prefork else "direct" if stack.engine_command else "default (supervisor)",
        server_layout=(
            f"API for people + API for workers + services, Redis ({len(stack.server_processes)} processes)"
            if stack.engine_server
            else "one process"
        ),
        transfers=args.transfers if profile == "production" or args.transfers_embedded is None else args.transfers_embedded,
        concurrency=args.concurrency,
        held=args.held if profile == "production" or args.held_embedded is None else args.held_embedded,
    )
    server_pids, worker_pids = [p.pid for p in stack.server_processes], [p.pid for p in stack.workers]
    roots = server_pids + worker_pids
    try:
        started = time.perf_counter()
        # In steps, listing after each, to see how the list latency grows with the volume held.
        steps = 5 if result.held >= 1000 else 1
        # Production keeps Prefect in PostgreSQL: past --held-api, held runs are copied there (copy_held_runs).
        prefect_db = drop[0] if profile == "production" and args.held_api is not None else None
        sources: list[tuple[str, dict[str, str]]] = []
        for k in range(steps):
            result.held_runs += hold(
                list(dict.fromkeys([stack.api_url, stack.engine_api_url])),
                os.environ["CASETRANSFER_DATABASE_URL"],
                result.held * (k + 1) // steps - result.held * k // steps,
                profile == "production",
                prefect_db=prefect_db,
                api_limit=args.held_api,
                sources=sources,
            )
            with httpx.Client(base_url=stack.api_url, timeout=60) as http:
                sample = [list_latency(http)[0] for _ in range(10)]
            result.list_by_held.append((result.held * (k + 1) // steps, pct(sample, 50), pct(sample, 95)))
            say(f"{profile}: {result.held * (k + 1) // steps} held after {time.perf_counter() - started:.0f} s")
        result.held_seconds = time.perf_counter() - started
        result.held_via_api = len(sources)
        with httpx.Client(base_url=stack.api_url, timeout=60) as http:
            # What the server itself counts as suspended and held: the copies must be runs like any other.
            counted = (
                http.post(
                    "/flow_runs/count", json={"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}, "tags": {"all_": ["held"]}}}
                )
                .raise_for_status()
                .json()
            )
        if counted != result.held_runs:
            raise RuntimeError(f"the server counts {counted} held suspended runs, {result.held_runs} were made")
        say(f"{profile}: {result.held} suspended transfers held in {result.held_seconds:.0f} s")

        with httpx.Client(base_url=stack.api_url, timeout=60) as http:
            idle = [list_latency(http) for _ in range(30)]
        result.list_idle_p50_ms = pct([ms for ms, _ in idle], 50)
        result.list_idle_p95_ms = pct([ms for ms, _ in idle], 95)
        say(
            f"{profile}: listing 200 suspended runs, idle: p50 {result.list_idle_p50_ms:.0f} ms, p95 {result.list_idle_p95_ms:.0f} ms"
        )

        form = base_form()
        lister = Lister(stack.api_url, args.list_interval)
        cpu0, pg0, redis0, own0 = tree_cpu(server_pids, worker_pids), postgres_cpu(), redis_cpu(), own_cpu()
        busy0 = machine_busy()
        load_start = time.time()
        lister.start()
        done: list[tuple[str, str, float, list[StepSample]]] = []
        with ThreadPoolExecutor(args.concurrency) as pool:
            store_url = os.environ["CASETRANSFER_DATABASE_URL"]
            futures = [pool.submit(drive, i, form, args.step_timeout, store_url) for i in range(result.transfers)]
            last_report = time.monotonic()
            for future in as_completed(futures):
                try:
                    done.append(future.result())
                except Exception as exc:
                    result.failures.append(f"{type(exc).__name__}: {exc}")
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    rate = STEPS_PER_TRANSFER * len(done) / max(1.0, time.time() - load_start) * 60
                    say(f"{profile}: {len(done)}/{result.transfers} transfers completed, ~{rate:.0f} steps/min")
        lister.stop.set()
        lister.join()
        result.load_seconds = time.time() - load_start
        cpu = {k: v - cpu0[k] for k, v in tree_cpu(server_pids, worker_pids).items()}
        result.stack_cpu_s = sum(cpu.values())
        pg_cpu, redis_cpu_s, driver_cpu = postgres_cpu() - pg0, redis_cpu() - redis0, own_cpu() - own0
        result.machine_busy_s = machine_busy() - busy0
        result.others_cpu_s = max(0.0, result.machine_busy_s - result.stack_cpu_s - pg_cpu - redis_cpu_s - driver_cpu)
        result.cores = os.cpu_count() or 0
        result.load_avg_p50, result.load_avg_max = pct(lister.load, 50), max(lister.load, default=None)
        result.stack_rss_mb = rss_mb(roots)
        result.workers_alive_at_end = sum(w.poll() is None for w in stack.workers)
        result.recover_created, result.recover_started, result.recover_absorbed = recover_runs(stack.api_url)

        with httpx.Client(base_url=stack.api_url, timeout=60) as http:
            latencies, poll, start, work, raises, ends = [], [], [], [], [], []
            for reference, run_id, raised, samples in done:
                transfer = run_states(http, run_id)
                tagged = http.post("/flow_runs/filter", json={"flow_runs": {"tags": {"all_": [reference]}}, "limit": 200})
                task_runs = [(r, run_states(http, r["id"])) for r in tagged.raise_for_status().json() if r["id"] != run_id]
                # Every segment a worker started (Pending before Running) is a process start. A task
                # opened already suspended runs no process: Running then Paused, with no Pending.
                for states in [transfer, *(states for _, states in task_runs)]:
                    for scheduled, pending, running, end in segments(states):
                        result.segments += pending is not None
                        result.opened_suspended += pending is None
                        if scheduled is not None and pending is not None:
                            poll.append(pending - scheduled)
                        if pending is not None:
                            start.append(running - pending)
                        if end is not None:
                            work.append(end - running)
                allocation = next((states for r, states in task_runs if r["parameters"].get("task") == "allocation"), [])
                first = [first_after(transfer, raised, {"PAUSED"}), first_after(allocation, raised, {"PAUSED"})]
                if all(first):
                    raises.append(max(f for f in first if f) - raised)
                at = recorded_at(store_url, reference)
                for sample in samples:
                    recorded = at.get(sample.step)
                    end = reacted(transfer, recorded) if recorded is not None else None
                    if recorded is None or end is None:
                        what = "no history row" if recorded is None else "no suspension or end of its run after it"
                        result.unmeasured.append(f"{reference} {sample.step}: {what}")
                        continue
                    # The task runs the transfer's run opened on reading it, each suspended at its form.
                    for r, states in task_runs:
                        created = dt.datetime.fromisoformat(r["created"]).timestamp()
                        if recorded < created <= end:
                            paused = first_after(states, created, {"PAUSED"})
                            end = max(end, paused) if paused else end
                    latencies.append(end - sample.sent)
                    ends.append(end)
            result.paused_runs_at_end = len(http.post("/flow_runs/filter", json={**PAUSED_FILTER, "limit": 200}).json())

        result.steps = len(latencies)
        if ends:
            window = max(ends) - load_start
            result.steps_per_min = result.steps / window * 60
            lo, hi = load_start + 0.1 * window, max(ends) - 0.1 * window
            result.steady_steps_per_min = sum(lo <= e <= hi for e in ends) / (hi - lo) * 60
        result.step_p50_s, result.step_p95_s = pct(latencies, 50), pct(latencies, 95)
        result.step_max_s = max(latencies) if latencies else None
        result.poll_wait_p50_s, result.process_start_p50_s, result.flow_work_p50_s = (
            pct(poll, 50),
            pct(start, 50),
            pct(work, 50),
        )
        result.raise_p50_s = pct(raises, 50)
        if result.segments:
            result.cpu_per_segment_s = result.stack_cpu_s / result.segments
            result.server_cpu_per_segment_s = cpu["server"] / result.segments
            result.worker_cpu_per_segment_s = cpu["workers"] / result.segments
            result.run_cpu_per_segment_s = cpu["runs"] / result.segments
        if result.steps:
            result.cpu_per_step_s = result.stack_cpu_s / result.steps
            result.driver_cpu_per_step_s = driver_cpu / result.steps
            result.postgres_cpu_per_step_s = pg_cpu / result.steps
            result.redis_cpu_per_step_s = redis_cpu_s / result.steps
        result.list_loaded_p50_ms = pct(lister.latencies, 50)
        result.list_loaded_p95_ms = pct(lister.latencies, 95)
        result.list_loaded_samples = len(lister.latencies)
        result.list_page_size = lister.page
        return result
    finally:
        stack.stop()
        if stack.redis_url:
            from ops.production import release_redis_db

            release_redis_db(stack.redis_url)
        if drop:
            from ops.production import drop_database

            for url in drop:
                drop_database(url)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def recover_runs(api_url: str) -> tuple[int, int, int]:
    """recover-transfers runs so far: created, started (a process each), and done by the run
    holding the slot instead (queued behind it, then cancelled: no process)."""
    import httpx

    from prefect_runs.api import RECOVER_DEPLOYMENT
    from prefect_runs.engine import ABSORBED

    with httpx.Client(base_url=api_url, timeout=60) as http:
        deployment = http.get(f"/deployments/name/{RECOVER_DEPLOYMENT}").json()["id"]
        runs, offset = [], 0
        while batch := http.post(
            "/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment]}}, "limit": 200, "offset": offset}
        ).json():
            runs += batch
            offset += len(batch)
    absorbed = sum(((r.get("state") or {}).get("message") or "").startswith(ABSORBED) for r in runs)
    started = sum(r.get("start_time") is not None for r in runs) - absorbed
    return len(runs), started, absorbed


ROWS: list[tuple[str, Callable[[ProfileResult], str]]] = [
    ("workers (poll interval s), alive at end", lambda r: f"{r.workers} ({r.worker_query_seconds:g}), {r.workers_alive_at_end}"),
    ("flow-run command", lambda r: r.engine),
    (
        "recover-transfers runs: created / started / done by the one in flight",
        lambda r: f"{r.recover_created} / {r.recover_started} / {r.recover_absorbed}",
    ),
    ("Prefect server", lambda r: r.server_layout),
    ("transfers driven / in flight", lambda r: f"{r.transfers} / {r.concurrency}"),
    (
        "held after allocation (volume only): transfers / suspended runs (of the transfers, made through the API)",
        lambda r: f"{r.held} / {r.held_runs} in {r.held_seconds:.0f} s ({r.held_via_api} through the API)",
    ),
    ("steps recorded (answers)", lambda r: str(r.steps)),
    (
        "run segments (process starts) / per step",
        lambda r: f"{r.segments} / {_fmt(r.segments / r.steps if r.steps else None, '.2f')}",
    ),
    ("task runs opened already suspended (no process)", lambda r: str(r.opened_suspended)),
    ("failures / steps sent but not measured", lambda r: f"{len(r.failures)} / {len(r.unmeasured)}"),
    ("steps/min, whole run", lambda r: _fmt(r.steps_per_min)),
    ("steps/min, steady (middle 80%)", lambda r: _fmt(r.steady_steps_per_min)),
    ("step → next suspension p50 s", lambda r: _fmt(r.step_p50_s)),
    ("step → next suspension p95 s", lambda r: _fmt(r.step_p95_s)),
    ("a run segment: waiting for a poll, p50 s", lambda r: _fmt(r.poll_wait_p50_s)),
    ("a run segment: process start + imports, p50 s", lambda r: _fmt(r.process_start_p50_s)),
    ("a run segment: the flow's work, p50 s", lambda r: _fmt(r.flow_work_p50_s)),
    ("raise → transfer and allocation suspended p50 s", lambda r: _fmt(r.raise_p50_s)),
    ("CPU s per segment (server+workers+runs)", lambda r: _fmt(r.cpu_per_segment_s, ".2f")),
    ("  server", lambda r: _fmt(r.server_cpu_per_segment_s, ".2f")),
    ("  workers (polling, starting runs)", lambda r: _fmt(r.worker_cpu_per_segment_s, ".2f")),
    ("  flow-run processes", lambda r: _fmt(r.run_cpu_per_segment_s, ".2f")),
    ("CPU s per step, incl. raises", lambda r: _fmt(r.cpu_per_step_s, ".2f")),
    ("driver (CLI path) CPU s per step", lambda r: _fmt(r.driver_cpu_per_step_s, ".2f")),
    ("PostgreSQL CPU s per step (whole server)", lambda r: _fmt(r.postgres_cpu_per_step_s, ".2f")),
    ("Redis CPU s per step (whole server)", lambda r: _fmt(r.redis_cpu_per_step_s, ".2f")),
    ("stack RSS at end MB", lambda r: _fmt(r.stack_rss_mb, ".0f")),
    (
        "the machine while driving: cores / load average p50, max / busy CPU s, of it other processes'",
        lambda r: (
            f"{r.cores} / {_fmt(r.load_avg_p50)}, {_fmt(r.load_avg_max)} / "
            f"{r.machine_busy_s:.0f}, {r.others_cpu_s:.0f} ({100 * r.others_cpu_s / max(r.machine_busy_s, 1e-9):.0f}%)"
        ),
    ),
    ("list 200 suspended, idle p50/p95 ms", lambda r: f"{_fmt(r.list_idle_p50_ms, '.0f')} / {_fmt(r.list_idle_p95_ms, '.0f')}"),
    (
        "list 200 suspended, idle, as the volume grew (held: p50/p95 ms)",
        lambda r: "; ".join(f"{n}: {_fmt(a, '.0f')}/{_fmt(b, '.0f')}" for n, a, b in r.list_by_held),
    ),
    (
        "list 200 suspended, loaded p50/p95 ms",
        lambda r: f"{_fmt(r.list_loaded_p50_ms, '.0f')} / {_fmt(r.list_loaded_p95_ms, '.0f')} ({r.list_loaded_samples} samples)",
    ),
]


def table(results: list[ProfileResult]) -> str:
    lines = ["| | " + " | ".join(r.profile for r in results) + " |", "| --- |" + " --- |" * len(results)]
    lines += [f"| {name} | " + " | ".join(fmt(r) for r in results) + " |" for name, fmt in ROWS]
    return "\n".join(lines)


def verdict(r: ProfileResult) -> list[str]:
    checks = [
        ("steps/min ≥ 30 (steady)", r.steady_steps_per_min >= TARGET_STEPS_PER_MIN),
        ("p95 step → next suspension < 30 s", r.step_p95_s is not None and r.step_p95_s < TARGET_P95_STEP_S),
        ("p95 list of 200 < 500 ms under load", r.list_loaded_p95_ms is not None and r.list_loaded_p95_ms < TARGET_LIST_P95_MS),
    ]
    return [f"{r.profile}: {name}: {'met' if ok else 'NOT met'}" for name, ok in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="embedded,production", help="comma-separated: embedded, production")
    parser.add_argument("--transfers", type=int, default=1000, help="transfers driven through every step")
    parser.add_argument("--transfers-embedded", type=int, default=None, help="--transfers for the embedded profile only")
    parser.add_argument("--held", type=int, default=10_000, help="further transfers held suspended (API level)")
    parser.add_argument("--held-embedded", type=int, default=None, help="--held for the embedded profile only (SQLite is slower)")
    parser.add_argument(
        "--held-api",
        type=int,
        default=None,
        help="production only: make this many held transfers through the API and copy the rest in Prefect's "
        "PostgreSQL database (default: all through the API)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="transfers in flight at once")
    parser.add_argument("--workers", type=int, default=2, help="workers in the production profile")
    parser.add_argument("--worker-query-seconds", type=float, default=None, help="override each profile's worker poll interval")
    parser.add_argument("--pg", default=os.environ.get("CASETRANSFER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument(
        "--start",
        choices=["profile", "prefork", "direct", "default"],
        default="profile",
        help="how flow runs start (ops.production.STARTS): each profile's own, forked from a warm launcher, "
        "a new interpreter running the engine, or Prefect's default (workspace supervisor first)",
    )
    parser.add_argument(
        "--server",
        choices=["split", "single"],
        default="split",
        help="production profile's server: Prefect's multi-server layout on Redis (what up-production runs), or one process",
    )
    parser.add_argument("--redis", default=os.environ.get("CASETRANSFER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--list-interval", type=float, default=1.0, help="seconds between list requests under load")
    parser.add_argument("--step-timeout", type=float, default=600.0, help="seconds a transfer may take to reach a step")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "load", help="directory for the JSON and Markdown results")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one profile in this process
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        result = run_profile(args.child, args)
        (args.out / f"{args.child}.json").write_text(json.dumps(asdict(result), indent=2))
        return 0

    results = []
    for profile in [p.strip() for p in args.profiles.split(",") if p.strip()]:
        if profile not in ("embedded", "production"):
            parser.error(f"--profiles: unknown profile {profile!r}")
        # Each profile in its own process: Prefect reads its API URL once, and CPU is counted apart.
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--child", profile]
        if subprocess.run(child, cwd=ROOT).returncode != 0:
            say(f"{profile}: the run failed")
            continue
        results.append(ProfileResult(**json.loads((args.out / f"{profile}.json").read_text())))
    if not results:
        return 1
    report = [table(results), "", *[line for r in results for line in verdict(r)]]
    for r in results:
        report += [f"{r.profile}: {f}" for f in r.failures[:5]]
        report += [f"{r.profile}: not measured: {u}" for u in r.unmeasured[:5]]
    text_report = "\n".join(report)
    (args.out / "load.md").write_text(text_report + "\n")
    print(text_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

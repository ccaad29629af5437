"""Soak test: the production profile driven at a steady rate for hours, with faults, then checked.

    python bench/soak.py [--minutes 120] [--rate 2] [--concurrency 8] [--workers 2]
                         [--kill-every 600] [--duplicate-share 0.1] [--pg URL] [--redis URL] [--out out/soak]

Run by hand, not in CI. The rate: --rate transfers raised a minute, each driven through every
step (seven answers), so 2 a minute is ~14 answers a minute: steady, and about half the 30 steps
a minute the load benchmark sets as the target (bench/load.py TARGET_STEPS_PER_MIN), so that the
faults, not the volume, are what is tested. No region's yearly volume is in the estate data or
the seeds, so the rate is not scaled from one.

Faults, all at once in one run, on top of the load:
- a worker SIGKILLed every --kill-every seconds (its processes and the run it held; the worker's
  supervisor, ops/supervise.py, starts it again);
- the people's API server restarted once, at a third of the run;
- the store's database cut for 5 s twice (connections refused and every open one terminated),
  at a fifth and three fifths of the run;
- the same answer sent twice, the second after a random delay, for --duplicate-share of the answers.
Every --leave-every-th transfer is left after its allocation, as a person who never comes back.

At the end (after the last transfer is raised, the drivers finish, then a settling wait):
every transfer driven is completed, or waiting where its store says (each open task's run and
the transfer's run Paused); no history entry is stored twice; no flow run is left Running or
Pending; the reminder job, run twice as of --reminders-after working days ahead (when the
transfers left waiting are overdue), sends their digests the first time and nothing the second. Printed with the figures:
answers a minute, p95 answer to next suspension, recover-transfers runs created / started /
done by the one in flight, worker restarts, machine CPU. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (bench/load.py: the stack, the driving and the measuring it shares)

ROOT = load.ROOT


@dataclass
class SoakResult:
    minutes: float
    rate_per_min: float
    workers: int
    transfers_raised: int = 0
    transfers_completed: int = 0
    transfers_waiting_as_stored: int = 0
    transfers_inconsistent: list[str] = field(default_factory=list)
    driver_errors: list[str] = field(default_factory=list)
    answers: int = 0
    answers_per_min: float = 0.0
    step_p50_s: float | None = None
    step_p95_s: float | None = None
    duplicates_sent: int = 0
    duplicates_refused: int = 0
    duplicates_told_recorded: int = 0
    history_stored_twice: int = 0
    runs_stuck_running_or_pending: int = 0
    runs_stuck: list[str] = field(default_factory=list)
    transfers_left_waiting: int = 0
    reminders_first_run: int = 0
    reminders_second_run: int = 0
    worker_kills: int = 0
    worker_restarts: int = 0
    api_restarts: int = 0
    store_cuts: int = 0
    recover_created: int = 0
    recover_started: int = 0
    recover_absorbed: int = 0
    machine_cpu_s: float = 0.0
    cores: int = 0
    faults: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        found = []
        if self.transfers_inconsistent:
            found.append(f"{len(self.transfers_inconsistent)} transfers neither completed nor waiting as stored")
        if self.history_stored_twice:
            found.append(f"{self.history_stored_twice} history entries stored twice")
        if self.runs_stuck_running_or_pending:
            found.append(f"{self.runs_stuck_running_or_pending} runs left Running or Pending")
        if self.transfers_left_waiting and not self.reminders_first_run:
            found.append("the transfers left waiting had overdue actions, and the reminder run sent nothing")
        if self.reminders_second_run:
            found.append(f"the second reminder run sent {self.reminders_second_run}")
        if self.duplicates_told_recorded:
            found.append(f"{self.duplicates_told_recorded} duplicate answers told 'recorded'")
        return found


def _worker_processes(supervisor_pid: int) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(pid) != supervisor_pid and os.getpgid(int(pid)) == supervisor_pid:
                found.append(int(pid))
        except ProcessLookupError:
            continue
    return found


def kill_a_worker(stack: Any, rng: random.Random) -> int:
    """SIGKILL one worker's processes (and the runs it forked), leaving its supervisor to restart it."""
    supervisor = rng.choice(stack.workers)
    victims = _worker_processes(supervisor.pid)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(victims)


def restart_people_api(stack: Any) -> None:
    """Stop the people's API server (the one the UI and the CLI use) and start it again."""
    assert stack.server is not None
    stack._stop([stack.server])
    env = stack.child_env({**stack.server_env, **stack.messaging_env(), **stack.auth_server_env()})
    stack.server = stack._start_prefect("server", env, "server", "start", *stack._api_args(stack.port, True))
    stack._wait_until_answering(stack.server, stack.api_url, "server", 120)


def cut_store(store_url: str, seconds: float) -> None:
    """Refuse new connections to the store's database and end the open ones, for `seconds`."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (url.database,))
        time.sleep(seconds)
        conn.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true')


def restarts_logged(stack: Any) -> int:
    log_dir = stack.log_dir or stack.home / "logs"
    return sum(p.read_text(errors="replace").count("starting it again") for p in log_dir.glob("*.log"))


class Faults(threading.Thread):
    def __init__(self, stack: Any, store_url: str, minutes: float, kill_every: float, result: SoakResult):
        super().__init__(daemon=True)
        self.stack, self.store_url, self.result = stack, store_url, result
        self.length, self.kill_every = minutes * 60, kill_every
        self.stop = threading.Event()
        self.last_at = time.monotonic()  # when the last fault was made

    def run(self) -> None:
        rng = random.Random(7)
        began = time.monotonic()
        planned = sorted(
            [(self.length / 5, "cut"), (self.length * 3 / 5, "cut"), (self.length / 3, "api")]
            + [(t, "kill") for t in _every(self.kill_every, self.length)]
        )
        for at, what in planned:
            if self.stop.wait(max(0.0, at - (time.monotonic() - began))):
                return
            stamp = time.strftime("%H:%M:%S")
            try:
                if what == "kill":
                    self.result.faults.append(f"{stamp} worker killed ({kill_a_worker(self.stack, rng)} processes)")
                    self.result.worker_kills += 1
                elif what == "api":
                    restart_people_api(self.stack)
                    self.result.faults.append(f"{stamp} people's API server restarted")
                    self.result.api_restarts += 1
                else:
                    cut_store(self.store_url, 5)
                    self.result.faults.append(f"{stamp} store cut for 5 s")
                    self.result.store_cuts += 1
            except Exception as exc:  # a fault that could not be made is reported, not fatal
                self.result.faults.append(f"{stamp} {what} failed: {exc}")
            self.last_at = time.monotonic()
            load.say(self.result.faults[-1])


# How long a deployment concurrency slot's lease lasts unless its run renews it: a fixed figure
# in Prefect 3.8.8's flow engine, not a setting of ours (docs/production.md).
PREFECT_SLOT_LEASE_SECONDS = 300


def _recover_fallback_seconds() -> float:
    """recover-transfers' schedule (prefect.yaml): how often the fallback looks."""
    import yaml

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    recover = next(d for d in deployments if d["name"] == "recover-transfers")
    return float(recover["schedules"][0]["interval"])


def _every(interval: float, length: float) -> list[float]:
    return [interval * k for k in range(1, int(length // interval) + 1)]


def drive_with_duplicates(
    i: int,
    form: dict[str, Any],
    timeout: float,
    store_url: str,
    share: float,
    leave_every: int,
    result: SoakResult,
    lock: threading.Lock,
) -> tuple[str, str, float, list[load.StepSample]]:  # noqa: E501
    """load.drive, with some answers sent a second time after a random delay (a second person)."""
    from services import send_answer

    rng = random.Random(10_000 + i)

    def again(reference: str, step: str, answer: dict[str, Any]) -> None:
        time.sleep(rng.uniform(0, 3))
        try:
            send_answer(reference, step, dict(answer), wait=False, timeout=timeout)
            told = True
        except Exception:  # refused (StepRefused), or failed: either way not told "recorded"
            told = False
        with lock:
            result.duplicates_sent += 1
            result.duplicates_refused += not told
            result.duplicates_told_recorded += told

    def after(reference: str, step: str, answer: dict[str, Any]) -> None:
        if rng.random() < share:
            again(reference, step, answer)
        if leave_every and i % leave_every == leave_every - 1 and step == load.ALLOCATION[0]:
            raise LeftWaiting(reference)

    try:
        return load.drive(i, form, timeout, store_url, after_send=after)
    except LeftWaiting as left:
        with lock:
            result.transfers_left_waiting += 1
        return (left.reference, "", 0.0, [])


class LeftWaiting(Exception):
    """A transfer nobody works on after its allocation: it must wait where it is, and the
    reminder run must name its overdue actions once."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


def check_end(store_url: str, api_url: str, references: list[tuple[str, str]], result: SoakResult) -> None:
    import httpx
    from sqlalchemy import func, select

    from tasks.domain import transfer_views
    from tasks.store.models import HistoryEntry, Nsi, WaitingTask
    from tasks.store.session import get_engine

    engine = get_engine(store_url)
    with httpx.Client(base_url=api_url, timeout=60) as http:

        def state(run_id: str) -> str:
            return http.get(f"/flow_runs/{run_id}").raise_for_status().json()["state"]["type"]

        for reference, run_id in references:
            if not run_id:
                result.transfers_inconsistent.append(f"{reference} (stored, but no flow run drives it)")
                continue
            status, run = transfer_views.nsi_status(reference)[0], state(run_id)
            if status == "completed" and run == "COMPLETED":
                result.transfers_completed += 1
                continue
            with engine.connect() as conn:
                open_runs = conn.execute(
                    select(WaitingTask.task, WaitingTask.flow_run_id)
                    .join(Nsi, Nsi.id == WaitingTask.nsi_id)
                    .where(Nsi.reference == reference, WaitingTask.status == "open")
                ).all()
            states = {task: state(r) if r else "NO RUN" for task, r in open_runs}
            if run == "PAUSED" and states and all(s == "PAUSED" for s in states.values()):
                result.transfers_waiting_as_stored += 1
            else:
                result.transfers_inconsistent.append(f"{reference} ({status}; run {run}; tasks {states})")
        stuck = http.post(
            "/flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING"]}}}, "limit": 200}
        ).json()
        result.runs_stuck_running_or_pending = len(stuck)
        # Which, to examine: a recover or nightly run in flight at the end is not a transfer's.
        result.runs_stuck = [f"{r['name']} {r['state']['name']} since {r['state']['timestamp']}" for r in stuck]
    with engine.connect() as conn:
        twice = (
            select(HistoryEntry.nsi_id, HistoryEntry.event, HistoryEntry.detail)
            .group_by(HistoryEntry.nsi_id, HistoryEntry.event, HistoryEntry.detail)
            .having(func.count() > 1)
        )
        result.history_stored_twice = len(conn.execute(twice).all())


def reminders_twice(working_days_ahead: int) -> tuple[int, int]:
    """The morning's reminder job, run twice over the soak's store as of a day when the actions
    of the transfers left waiting are overdue: mails sent each time (some, then none)."""
    import datetime as dt

    from tasks.calendar import get_calendar
    from tasks.notify.digests import run_reminders

    as_of = get_calendar().add_working_days(dt.date.today(), working_days_ahead)
    return run_reminders(as_of).sent, run_reminders(as_of).sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=2.0, help="transfers raised a minute")
    parser.add_argument("--concurrency", type=int, default=8, help="transfers in flight at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=600.0, help="seconds between worker kills")
    parser.add_argument("--duplicate-share", type=float, default=0.1, help="share of answers sent twice")
    parser.add_argument("--leave-every", type=int, default=10, help="every Nth transfer is left waiting after allocation")
    parser.add_argument("--reminders-after", type=int, default=30, help="working days after today the reminder check runs as of")
    parser.add_argument(
        "--settle", type=float, default=300.0,
        help="seconds to let the last steps finish; never less than the recovery bound after the last fault",
    )  # fmt: skip
    parser.add_argument("--step-timeout", type=float, default=900.0, help="seconds a transfer may take to reach a step")
    parser.add_argument("--pg", default=os.environ.get("CASETRANSFER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("CASETRANSFER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "soak")
    args = parser.parse_args(argv)
    stack_args = argparse.Namespace(
        pg=args.pg, redis=args.redis, server="split", workers=args.workers, worker_query_seconds=None, start="profile"
    )  # noqa: E501

    base = Path(tempfile.mkdtemp(prefix="ct-soak-"))
    result = SoakResult(minutes=args.minutes, rate_per_min=args.rate, workers=args.workers, cores=os.cpu_count() or 0)
    load.say(f"soak: starting the production profile in {base}")
    stack, drop = load.start_stack("production", base, stack_args)
    store_url = os.environ["CASETRANSFER_DATABASE_URL"]
    lock = threading.Lock()
    busy0 = load.machine_busy()
    faults = Faults(stack, store_url, args.minutes, args.kill_every, result)
    try:
        form = load.base_form()
        futures: list[Future] = []
        began, began_wall = time.monotonic(), time.time()
        faults.start()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            i = 0
            while time.monotonic() - began < args.minutes * 60:
                futures.append(
                    pool.submit(
                        drive_with_duplicates,
                        i,
                        form,
                        args.step_timeout,
                        store_url,
                        args.duplicate_share,
                        args.leave_every,
                        result,
                        lock,
                    )
                )
                i += 1
                if i % 10 == 0:
                    done = sum(f.done() for f in futures)
                    load.say(f"soak: {i} raised, {done} finished, {len(result.faults)} faults so far")
                time.sleep(60 / args.rate)
            faults.stop.set()
            load.say("soak: no more transfers; waiting for those in flight")
        result.transfers_raised = len(futures)
        driven = []
        for f in futures:
            try:
                driven.append(f.result())
            except Exception as exc:
                result.driver_errors.append(f"{type(exc).__name__}: {exc}"[:300])
        # A run that is no transfer's, killed by the last fault, is marked crashed by the 5-minute
        # fallback once stale_run_seconds have passed (flows/admin.py settle_lost); when the kill
        # also took the recover run holding the slot, the fallback waits for its lease to run out
        # first (15 min 50 s in the soak of 6 December): check after all of that.
        from tasks.settings import get_settings

        bound = get_settings().stale_run_seconds + _recover_fallback_seconds() + PREFECT_SLOT_LEASE_SECONDS + 60
        settle = max(args.settle, faults.last_at + bound - time.monotonic())
        load.say(f"soak: settling for {settle:.0f} s")
        time.sleep(settle)
        raised_refs = _references(store_url)
        check_end(store_url, stack.api_url, raised_refs, result)
        _figures(stack.api_url, store_url, driven, began_wall, result)
        result.reminders_first_run, result.reminders_second_run = reminders_twice(args.reminders_after)
        result.recover_created, result.recover_started, result.recover_absorbed = load.recover_runs(stack.api_url)
        result.worker_restarts = restarts_logged(stack)
        result.machine_cpu_s = load.machine_busy() - busy0
    finally:
        faults.stop.set()
        stack.stop()
        if stack.redis_url:
            from ops.production import release_redis_db

            release_redis_db(stack.redis_url)
        from ops.production import drop_database

        for url in drop:
            drop_database(url)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(asdict(result), indent=2))
    print(report(result))
    return 1 if result.failures() else 0


def _references(store_url: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from tasks.store.models import Nsi
    from tasks.store.session import get_engine

    with get_engine(store_url).connect() as conn:
        # Every NSI, one without a flow run too: a raise half-stored (the store took the NSI, no
        # run drives it) would be a transfer silently stalled, and is counted as neither below.
        return [(r, f or "") for r, f in conn.execute(select(Nsi.reference, Nsi.flow_run_id))]


def _figures(
    api_url: str,
    store_url: str,
    driven: list[tuple[str, str, float, list[load.StepSample]]],
    began_wall: float,
    result: SoakResult,
) -> None:  # noqa: E501
    import httpx

    latencies, ends = [], []
    with httpx.Client(base_url=api_url, timeout=60) as http:
        for reference, run_id, _raised, samples in driven:
            if not samples:
                continue  # left waiting after its allocation on purpose
            transfer = load.run_states(http, run_id)
            at = load.recorded_at(store_url, reference)
            for sample in samples:
                recorded = at.get(sample.step)
                end = load.reacted(transfer, recorded) if recorded is not None else None
                if end is not None:
                    latencies.append(end - sample.sent)
                    ends.append(end)
    result.answers = len(latencies)
    result.answers_per_min = len(ends) / max(1.0, max(ends) - began_wall) * 60 if ends else 0.0
    result.step_p50_s, result.step_p95_s = load.pct(latencies, 50), load.pct(latencies, 95)


def report(r: SoakResult) -> str:
    lines = [
        f"soak: {r.minutes:.0f} min at {r.rate_per_min:g} transfers a minute, {r.workers} workers, {r.cores} cores",
        f"  transfers raised {r.transfers_raised}: completed {r.transfers_completed}, waiting as stored "
        f"{r.transfers_waiting_as_stored} (left after allocation on purpose {r.transfers_left_waiting}), neither "
        f"{len(r.transfers_inconsistent)}; driver errors {len(r.driver_errors)}",
        f"  answers measured {r.answers}, {r.answers_per_min:.1f} a minute; answer to next suspension p50 "
        f"{load._fmt(r.step_p50_s)} s, p95 {load._fmt(r.step_p95_s)} s",
        f"  faults: {r.worker_kills} worker kills ({r.worker_restarts} restarts by the supervisor), "
        f"{r.api_restarts} API restarts, {r.store_cuts} store cuts",
        f"  duplicates: {r.duplicates_sent} sent, {r.duplicates_refused} refused, {r.duplicates_told_recorded} told recorded",
        f"  history stored twice {r.history_stored_twice}; runs left Running/Pending {r.runs_stuck_running_or_pending}; "
        f"reminders {r.reminders_first_run} then {r.reminders_second_run}",
        f"  recover-transfers runs: created {r.recover_created}, started {r.recover_started}, done by the one in flight {r.recover_absorbed}",
        f"  machine CPU {r.machine_cpu_s:.0f} s ({r.machine_cpu_s / max(1.0, r.minutes * 60) / max(1, r.cores) * 100:.0f}% of the cores)",
    ]
    lines += [f"  NOT MET: {f}" for f in r.failures()] or ["  every check met"]
    lines += [f"  neither: {x}" for x in r.transfers_inconsistent[:10]]
    lines += [f"  driver error: {x}" for x in r.driver_errors[:10]]
    lines += [f"  left Running/Pending: {x}" for x in r.runs_stuck[:20]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

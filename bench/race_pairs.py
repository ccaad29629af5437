"""Two people answer the same waiting step at once, again and again, on the production profile
(issue 31): Prefect and the store on PostgreSQL, Redis, the API servers with auth and CSRF on,
two process workers, as `casetransfer up-production` runs them.

Kinds of pair, each on a task run (the concurrent shape: allocation, then the tasks after it) and
on the transfer's own run (the sequential shape: one step after another):

  cli-cli   two `record` commands (services.send_answer, the path `casetransfer record` takes)
  ui-cli    a UI Resume (a POST of the form's values to the API's resume endpoint, as the UI
            sends it: no claim, no look at the store) against a `record`
  ui-ui     two UI Resumes

The two sends start together, one after a random jitter (0..--jitter s). Each sender gives a
different name, so the store says whose answer was recorded. Printed per kind: pairs run,
both-succeeded (both told their answer was taken), both-refused, stored twice (the step's record
or history entry twice), told-not-theirs (a sender told "recorded" whose answer is not the one
recorded). Must hold: 0 both-succeeded, 0 stored twice, 0 told-not-theirs.

    .venv/bin/python bench/race_pairs.py --pairs 200 [--minutes 60] [--jitter 0.3] [--parallel 3]
    [--cli process]   # each `record` a real `casetransfer` process (about 1.6 s of CPU each)
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TODAY = "2026-12-21"
RAISED = "2026-12-14"
KINDS = ("cli-cli", "ui-cli", "ui-ui")
SHAPES = {"task run": 2, "own run": 1}
# The steps a transfer offers for pairs, in the order it asks for them, with each one's answer.
STEPS = {
    "task run": {
        "allocation": {"practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"},
        "police_checks": {"returned_on": "2026-12-16"},
        "address_assessment": {"method": "home_visit", "suitable": True, "done_on": "2026-12-18"},
        "safeguarding_checks": {"done_on": "2026-12-17"},
        "documents": {"done_on": "2026-12-16"},
        "handover": {"held_on": "2026-12-18"},
    },
    "own run": {
        "allocation": {"practitioner": "Pat Receiver", "team_code": "N50CAD"},
        "address_assessment": {"method": "home_visit", "suitable": True},
        "police_checks": {"returned_on": "2026-12-21"},
        "safeguarding_checks": {"returned_on": "2026-12-21"},
        "handover": {"held_on": "2026-12-21"},
    },
}


class Tally:
    def __init__(self, wanted: int, kinds: list[str]) -> None:
        self.wanted = wanted
        self.kinds = kinds
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], Counter[str]] = {(s, k): Counter() for s in SHAPES for k in KINDS}
        self.notes: list[str] = []

    def next_kind(self, shape: str) -> str | None:
        with self.lock:
            kind = min(self.kinds, key=lambda k: self.counts[(shape, k)]["started"])
            if self.counts[(shape, kind)]["started"] >= self.wanted:
                return None
            self.counts[(shape, kind)]["started"] += 1
            return kind

    def done(self, shape: str) -> bool:
        with self.lock:
            return all(self.counts[(shape, k)]["started"] >= self.wanted for k in self.kinds)

    def add(self, shape: str, kind: str, **outcome: int) -> None:
        with self.lock:
            self.counts[(shape, kind)].update(outcome)


def start_stack(base: Path, pg: str, redis: str) -> tuple[Any, list[str]]:
    """The production profile with this process pointed at it (before Prefect is imported)."""
    from ops.production import claim_redis_db, production_urls, start_production
    from ops.stack import free_port

    tag = uuid.uuid4().hex[:8]
    urls = production_urls(pg, prefect_db=f"ct_race_prefect_{tag}", store_db=f"ct_race_store_{tag}")
    common = {
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),
        "CASETRANSFER_TODAY": TODAY,
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
    }
    auth = f"casetransfer:{uuid.uuid4().hex}"
    port = free_port()
    os.environ.update({
        **common,
        "CASETRANSFER_DATABASE_URL": urls.store,
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_AUTH_STRING": auth,
        "PREFECT_HOME": str(base / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    })  # fmt: skip
    redis_url = claim_redis_db(redis)
    stack = start_production(
        base / "prefect", port, urls, workers=2, env=common, redis_url=redis_url, engine_port=free_port(), auth_string=auth
    )
    return stack, [urls.prefect, urls.store]


def ui_resume(api_url: str, auth: str, flow_run_id: str, answer: dict[str, Any]) -> str:
    """The UI's Resume: the form's values POSTed to the resume endpoint. "accepted" is the server
    storing them as the answer the run reads."""
    from prefect_runs.api import api_client

    with api_client(api_url, auth) as http:
        for _ in range(5):
            response = http.post(f"/flow_runs/{flow_run_id}/resume", json={"run_input": answer}, timeout=60)
            if response.status_code != 503:  # applied nothing: the person presses Resume again
                break
            time.sleep(random.uniform(0.2, 1.0))
    if response.status_code == 409:
        return "conflict"
    if response.status_code >= 400:
        return f"error {response.status_code}"
    status = response.json().get("status")
    return {"ACCEPT": "accepted", "ABORT": "not waiting"}.get(status, f"rejected ({status})")


def cli_record(reference: str, step: str, answer: dict[str, Any], mode: str) -> str:
    """`casetransfer record`: "recorded", "refused" (exit 2) or "error" (anything else)."""
    import services
    from tasks.domain import transfers

    if mode == "process":
        args = [f"--{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}" for k, v in answer.items()]
        done = subprocess.run([sys.executable, "-m", "ops.cli", "record", reference, step, *args],
                              cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)  # fmt: skip
        return {0: "recorded", 2: "refused"}.get(done.returncode, f"error {done.returncode}: {done.stderr.strip()[-200:]}")
    try:
        out = services.send_answer(reference, step, dict(answer))
    except transfers.StepRefused:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - counted, with its words
        return f"error: {exc}"
    return "recorded" if " recorded" in out else f"error: {out}"


def waiting_run(reference: str, step: str, shape: str, timeout: float = 300) -> str:
    """The run waiting for `step` once its Resume form is saved (what the UI needs to show it)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from prefect_runs.internals import read_input
    from tasks.domain import transfer_views

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if shape == "task run":
            found = transfer_views.task_round(reference, step)
            run_id = found[2] if found is not None and found[1] == "open" else None
        else:
            run_id = transfer_views.status_of(reference).flow_run_id
        if run_id:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(run_id)).state
                keyset = state.state_details.run_input_keyset if state is not None and state.is_paused() else None
                waits_here = (state.state_details.pause_key or "").startswith(step.replace("_", "-")) if keyset else False
                if waits_here and read_input(client, UUID(run_id), keyset["schema"]):
                    return run_id
        time.sleep(0.5)
    raise TimeoutError(f"{reference}: {step} never waited on its {shape}")


def one_pair(stack: Any, reference: str, step: str, shape: str, kind: str, args: argparse.Namespace, tally: Tally) -> None:
    from tasks.domain import transfer_views

    run_id = waiting_run(reference, step, shape)
    names = ("Ann Sender", "Bea Sender")
    answers = [{**STEPS[shape][step], "recorded_by": who} for who in names]
    sides = kind.split("-")
    results: list[str] = ["", ""]
    go = threading.Barrier(2)
    late = random.randrange(2)

    def send(i: int) -> None:
        go.wait()
        if i == late:
            time.sleep(random.uniform(0, args.jitter))
        if sides[i] == "ui":
            results[i] = ui_resume(stack.api_url, os.environ["PREFECT_API_AUTH_STRING"], run_id, answers[i])
        else:
            results[i] = cli_record(reference, step, answers[i], args.cli)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    told = [r in ("accepted", "recorded") for r in results]
    deadline = time.monotonic() + (120 if any(told) else 15)
    while not (seen := transfer_views.step_state(reference, step)).recorded and time.monotonic() < deadline:
        time.sleep(0.3)
    history = [h.event for h in transfer_views.status_of(reference).history]
    outcome = {
        "pairs": 1,
        "both_succeeded": int(all(told)),
        "both_refused": int(not any(told)),
        "stored_twice": int(history.count(step) > 1),
        "told_not_theirs": sum(1 for i in range(2) if told[i] and seen.recorded_by != names[i]),
        "errors": sum(1 for r in results if r.startswith("error")),
    }
    tally.add(shape, kind, **outcome)
    print(f"{time.strftime('%H:%M:%S')} {reference} {step} {shape} {kind}: {results}", file=sys.stderr, flush=True)
    if outcome["both_succeeded"] or outcome["told_not_theirs"] or outcome["stored_twice"] or outcome["errors"]:
        with tally.lock:
            tally.notes.append(f"{reference} {step} {shape} {kind}: {results}, recorded by {seen.recorded_by}")
    if not seen.recorded:  # both refused, or lost: answer it alone so the transfer moves on
        cli_record(reference, step, {**STEPS[shape][step], "recorded_by": "Cal Again"}, "inprocess")


def raise_one(shape: str, crn: str, lock: threading.Lock) -> str:
    import yaml

    import services
    from tasks.domain.form import parse_form
    from tasks.settings import reset_settings

    data = yaml.safe_load((ROOT / "demo" / "forms" / "london-to-manchester.yaml").read_text())
    data.update(crn=crn, raised_on=RAISED)
    with lock:  # the shape is read from the environment as the NSI is registered
        os.environ["CASETRANSFER_SHAPE_VERSION"] = str(SHAPES[shape])
        reset_settings()
        reference, _ = services.raise_transfer(parse_form(data))
    return reference


def transfers_loop(stack: Any, shape: str, args: argparse.Namespace, tally: Tally, stop_at: float, lock: threading.Lock,
                   crns: Any) -> None:  # fmt: skip
    """Raise a transfer, fire a pair at each of its steps in turn (the kind with fewest pairs so
    far), withdraw it; again, until every kind of this shape has its pairs or time is up."""
    import services

    while time.monotonic() < stop_at and not tally.done(shape):
        try:
            reference = raise_one(shape, next(crns), lock)
        except Exception as exc:  # noqa: BLE001 - said, and stop this loop
            with tally.lock:
                tally.notes.append(f"raising on the {shape}: {type(exc).__name__}: {exc}")
            return
        print(f"{time.strftime('%H:%M:%S')} {reference} raised on the {shape}", file=sys.stderr, flush=True)
        try:
            for step in STEPS[shape]:
                kind = tally.next_kind(shape)
                if kind is None or time.monotonic() >= stop_at:
                    break
                one_pair(stack, reference, step, shape, kind, args, tally)
        except Exception as exc:  # noqa: BLE001 - a transfer that got stuck: said, and on to the next
            with tally.lock:
                tally.notes.append(f"{reference}: {type(exc).__name__}: {exc}")
        finally:
            try:
                services.withdraw(reference, "race bench finished with it", "bench")
            except Exception:  # noqa: BLE001 - finished or closed already
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200, help="pairs of each kind on each shape")
    parser.add_argument("--minutes", type=float, default=120.0, help="stop starting pairs after this long")
    parser.add_argument("--jitter", type=float, default=0.3, help="the later send waits 0..JITTER s")
    parser.add_argument("--parallel", type=int, default=2, help="transfers driven at once on each shape")
    parser.add_argument("--cli", choices=("inprocess", "process"), default="inprocess")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="task run,own run")
    parser.add_argument("--kinds", default=",".join(KINDS), help="cli-cli,ui-cli,ui-ui")
    parser.add_argument("--resume", choices=("engine", "prefect"), default="engine",
                        help="prefect: `record` resumes as before issue 31 (prefect.flow_runs.resume_flow_run), to see the window")  # fmt: skip
    parser.add_argument("--pg", default=os.environ.get("CASETRANSFER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("CASETRANSFER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    base = Path(tempfile.mkdtemp(prefix="race-pairs-"))
    stack, drop = start_stack(base, args.pg, args.redis)
    tally = Tally(args.pairs, kinds)
    if args.resume == "prefect":
        from prefect.flow_runs import resume_flow_run

        from prefect_runs import engine

        engine.resume = lambda flow_run_id, answer, timeout=30.0: resume_flow_run(uuid.UUID(flow_run_id), run_input=answer)
    lock = threading.Lock()
    serial = iter(range(100000, 999999))
    crn_lock = threading.Lock()

    def crns() -> Any:
        while True:
            with crn_lock:
                crn = f"R{next(serial)}"
            yield crn

    t0 = time.monotonic()
    stop_at = t0 + args.minutes * 60
    try:
        threads = [
            threading.Thread(target=transfers_loop, args=(stack, shape, args, tally, stop_at, lock, crns()), daemon=True)
            for shape in shapes for _ in range(args.parallel)
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stack.stop()
        from ops.production import drop_database, release_redis_db

        if stack.redis_url:
            release_redis_db(stack.redis_url)
        for url in drop:
            drop_database(url)
    minutes = (time.monotonic() - t0) / 60
    print(f"race pairs on the production profile, jitter 0..{args.jitter} s, `record` {args.cli}, resume: {args.resume}, {minutes:.1f} min")
    print(f"{'shape':<9} {'kind':<8} {'pairs':>6} {'both-succeeded':>15} {'both-refused':>13} {'stored twice':>13} "
          f"{'told-not-theirs':>16} {'errors':>7}")  # fmt: skip
    for shape in shapes:
        for kind in kinds:
            c = tally.counts[(shape, kind)]
            print(f"{shape:<9} {kind:<8} {c['pairs']:>6} {c['both_succeeded']:>15} {c['both_refused']:>13} "
                  f"{c['stored_twice']:>13} {c['told_not_theirs']:>16} {c['errors']:>7}")  # fmt: skip
    for note in tally.notes:
        print("note:", note)


if __name__ == "__main__":
    main()

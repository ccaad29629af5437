"""`casetransfer up`: the embedded default, end to end, on one machine.

Starts a Prefect server on its own SQLite database and a process worker (both keep running
after the command ends; `casetransfer down` stops them), registers the deployments from
prefect.yaml, raises the demo transfers and answers some of their steps, seeds synthetic NSIs,
and runs the nightly tracker and reminders once as flow runs, so everything shows in the UI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from ops.stack import Stack, process_alive, stop_started
from tasks.settings import ROOT, get_settings

Say = Callable[[str], None]
DEMO = ROOT / "demo"


def _state_file() -> Path:
    return get_settings().data_dir / "stack.json"


def bring_up(port: int, seed_transfers: int, say: Say) -> None:
    from tasks.places.locator import build_index
    from tasks.store.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    say(f"database: {settings.effective_database_url}")
    upgrade()
    say(f"postcode index: {build_index()}")

    stack = Stack(home=settings.data_dir / "prefect", port=port)
    os.environ["PREFECT_API_URL"] = stack.api_url
    saved = json.loads(_state_file().read_text()) if _state_file().exists() else {}
    try:
        healthy = httpx.get(f"{stack.api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if healthy:
        say(f"Prefect server already running on {stack.api_url}")
        server_pid = saved.get("server")
    else:
        say("starting the Prefect server (embedded SQLite)...")
        stack.start_server()
        server_pid = stack.server.pid if stack.server else None
    say("registering the deployments from prefect.yaml...")
    stack.deploy()
    worker_pid = saved.get("worker")
    if not process_alive(worker_pid):
        worker_pid = stack.start_worker("worker-1").pid
    _state_file().write_text(json.dumps({"server": server_pid, "worker": worker_pid, "port": port}))
    say(f"worker running (pid {worker_pid}); logs in {stack.home / 'logs'}")

    _raise_demo_transfers(say)
    _import_demo_tracker(say)
    _seed_handovers(say)
    _seed_and_report(seed_transfers, say)
    say("")
    say(f"[bold]Prefect UI: http://127.0.0.1:{port}[/]  (flow runs: /runs; waiting transfers show as Suspended)")
    say("Try: casetransfer status CT000001   |   casetransfer down  to stop")


def _raise_demo_transfers(say: Say) -> None:
    import services
    from services import raise_transfer, send_answer
    from tasks.domain import transfer_views
    from tasks.domain.form import parse_form
    from tasks.store.models import Nsi
    from tasks.store.unit_of_work import UnitOfWork

    script = yaml.safe_load((DEMO / "script.yaml").read_text())
    with UnitOfWork() as uow:
        raised = {crn for (crn,) in uow.session.query(Nsi.crn).filter(Nsi.flow_run_id.is_not(None))}
    for item in script:
        # An item may name a profile (youth): its form, NSI and flow run follow that policy.
        profile = item.get("profile")
        form = parse_form(yaml.safe_load((DEMO / "forms" / item["form"]).read_text()), profile)
        if form.crn in raised:
            say(f"{form.crn}: already raised")
            continue
        reference, _ = raise_transfer(form, {"env": {"CASETRANSFER_PROFILE": profile}} if profile else None)
        say(f"{reference}: raised from demo/forms/{item['form']}")
        concurrent = transfer_views.shape_of(reference) >= 2
        for step, answer in (item.get("steps") or {}).items():
            if not concurrent:
                _wait_until_waiting(reference, step)
            # On the concurrent shape send_answer waits for the task to open (its gate, its run).
            say("  " + send_answer(reference, step, dict(answer)))
        if challenge := item.get("challenge"):
            seq = services.challenge(reference, challenge["concern"], challenge["by"], challenge["role"])
            say(f"  challenge-{seq} about risk raised: waiting for the receiving SPO")
        transfer_views.nsi_status(reference)


def _import_demo_tracker(say: Say) -> None:
    """Go-live: an example legacy tracker (with its bad rows) imported, so the demo shows imported
    transfers too; their flow runs start in the background, as `casetransfer import-tracker` does."""
    from ops.cli_import import _start_in_background
    from tasks.demo.legacy_trackers import write_example
    from tasks.domain.importer import import_tracker

    path = get_settings().effective_import_dir / "example-legacy-tracker.xlsx"
    if not path.exists():
        write_example(path, n=12, seed=0, region="N07")
    result = import_tracker(path, region="N07")
    say(f"legacy tracker imported: {result.line()}")
    if result.created:
        _start_in_background()


def _wait_until_waiting(reference: str, step: str, timeout: float = 120.0) -> None:
    import time

    from tasks.domain import transfer_views

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if transfer_views.nsi_status(reference)[1] == step:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{reference} did not reach {step} within {timeout:.0f} s: is the worker running?")


def _seed_handovers(say: Say) -> None:
    """Example POM-COM handovers (placeholder addresses: never mailed through SMTP), before the
    nightly jobs run, so the tracker's handover sheet and the handover emails have cases. Repeatable:
    a second `up` on the same day stores nothing new."""
    from tasks.demo.handover_seed import seed_handovers

    say(f"example POM-COM handovers: {seed_handovers(get_settings().current_date()).line()}")


def _seed_and_report(seed_transfers: int, say: Say) -> None:
    from prefect_runs import engine

    if seed_transfers:
        from tasks.demo.seed import seed
        from tasks.store.models import Nsi
        from tasks.store.unit_of_work import UnitOfWork

        with UnitOfWork() as uow:
            have = uow.session.query(Nsi).filter(Nsi.flow_run_id.is_(None), Nsi.imported_on.is_(None)).count()
        if have == 0:
            n = seed(seed_transfers, seed=1, as_of=get_settings().current_date())
            say(f"seeded {n} synthetic NSIs (no flow runs) for the tracker and reminders")
    for deployment in ("nightly-tracker/nightly-tracker", "nightly-reminders/nightly-reminders"):
        try:
            run_id = engine.start_run(deployment, {})
        except Exception as exc:  # a deployment not in prefect.yaml yet
            say(f"{deployment}: not started ({exc})")
            continue
        state = engine.wait_until_final(run_id, timeout=600)
        say(f"{deployment}: {state}")


def take_down(say: Say) -> None:
    path = _state_file()
    if not path.exists():
        say("nothing to stop")
        return
    state = json.loads(path.read_text())
    stop_started(path, [(name, state.get(name)) for name in ("worker", "server")], say)

"""Two people answer the same waiting step at once (issue 31), on a real Prefect server: one from
the command line and one with the UI's Resume form, or both with the UI's. Exactly one answer is
recorded and its sender told so; the command line that lost exits 2 saying who answered and when;
a UI sender who lost reads it on the run (its state's message, its log). On a task run of the
concurrent shape, and on the transfer's own run of the sequential shape."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from support.answers import run_messages, ui_resume
from support.cli import cli
from support.transfers import ALLOCATION, RAISED, raise_form
from support.waits import prefect_api, resume_form, wait_for

from tasks.domain import transfer_views
from tasks.settings import reset_settings

pytestmark = pytest.mark.prefect

FORM = {"practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
SHAPES = ["a task run", "the transfer's own run"]


def waiting_run(stack: Any, reference: str, shape: str) -> str:
    """The run waiting for allocation once its Resume form is saved (what the UI needs to show it)."""
    from prefect.client.orchestration import get_client

    def ready() -> str | None:
        if shape == "a task run":
            found = transfer_views.task_round(reference, "allocation")
            run_id = found[2] if found is not None and found[1] == "open" else None
        else:
            run_id = transfer_views.status_of(reference).flow_run_id
        if not run_id:
            return None
        with prefect_api(stack), get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
            if state is None or not state.is_paused() or not (state.state_details.pause_key or "").startswith("allocation"):
                return None
            return run_id if resume_form(client, run_id, state.state_details.pause_key) else None

    return wait_for(ready, timeout=180, what=f"{reference} waiting for allocation on {shape}")


def raised(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crn: str, shape: str) -> tuple[str, str]:
    if shape == "the transfer's own run":
        monkeypatch.setenv("CASETRANSFER_SHAPE_VERSION", "1")
        reset_settings()
    reference = raise_form(tmp_path, crn=crn, raised_on=RAISED)
    return reference, waiting_run(stack, reference, shape)


def at_once(*senders: Callable[[], Any]) -> list[Any]:
    """Start every sender together, each after its own small jitter; their results, in order."""
    results: list[Any] = [None] * len(senders)
    start = threading.Barrier(len(senders))

    def send(i: int) -> None:
        start.wait()
        threading.Event().wait(random.uniform(0, 0.2))
        try:
            results[i] = senders[i]()
        except Exception as exc:  # noqa: BLE001 - reported as the sender's outcome
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(senders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def recorded_once_by(reference: str, who: str) -> None:
    seen = wait_for(lambda: (s := transfer_views.step_state(reference, "allocation")).recorded and s, what="allocation recorded")
    assert seen.recorded_by == who
    history = [h.event for h in transfer_views.status_of(reference).history]
    assert history.count("allocation") == 1, history


def told_on_the_run(stack: Any, flow_run_id: str, who: str) -> None:
    """A UI sender whose answer was not taken reads on the run who recorded it and when."""
    said = re.compile(rf"allocation recorded by {re.escape(who)} at \d\d:\d\d:\d\d on ")
    with prefect_api(stack):
        wait_for(lambda: said.search(run_messages(flow_run_id)), timeout=120, what=f"the run to say {who} recorded it")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_ui_resume_and_a_cli_record_at_once_record_one_answer_and_tell_the_other_who_gave_it(
    prefect_stack, tmp_path, monkeypatch, shape
):
    reference, run_id = raised(prefect_stack, tmp_path, monkeypatch, "R310001" if shape == SHAPES[0] else "R310002", shape)
    ui, command = at_once(
        lambda: ui_resume(prefect_stack.api_url, run_id, {**FORM, "recorded_by": "Uma Browser"}),
        lambda: cli("record", reference, "allocation", *ALLOCATION, check=False),
    )
    assert isinstance(ui, str) and not isinstance(command, Exception), (ui, command)
    assert (ui == "accepted") != (command.returncode == 0), (ui, command)  # exactly one told it was taken
    if ui == "accepted":
        assert command.returncode == 2 and "Traceback" not in command.stderr, command
        assert re.search(r"allocation for \w+ was already answered by Uma Browser \(recorded .*\d\d:\d\d:\d\d\)", command.stderr)
        recorded_once_by(reference, "Uma Browser")
    else:
        assert ui in ("not waiting", "conflict") and "allocation recorded" in command.stdout, (ui, command)
        recorded_once_by(reference, "Kim SPO")
        told_on_the_run(prefect_stack, run_id, "Kim SPO")
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


@pytest.mark.parametrize("shape", SHAPES)
def test_two_ui_resumes_at_once_record_one_answer_and_the_run_says_whose(prefect_stack, tmp_path, monkeypatch, shape):
    reference, run_id = raised(prefect_stack, tmp_path, monkeypatch, "R310003" if shape == SHAPES[0] else "R310004", shape)
    names = ["Uma Browser", "Ula Browser"]
    outcomes = at_once(*(lambda who=who: ui_resume(prefect_stack.api_url, run_id, {**FORM, "recorded_by": who}) for who in names))
    assert outcomes.count("accepted") == 1, outcomes
    loser = outcomes[1 - outcomes.index("accepted")]
    # Not waiting (resumed already), a conflict (met in flight), or the next step's form refusing it.
    assert isinstance(loser, str) and (loser in ("not waiting", "conflict") or loser.startswith("rejected")), [
        (o, getattr(getattr(o, "response", None), "text", None)) for o in outcomes
    ]
    winner = names[outcomes.index("accepted")]
    recorded_once_by(reference, winner)
    told_on_the_run(prefect_stack, run_id, winner)
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")

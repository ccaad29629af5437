"""The concurrent shape for real: a Prefect server, the deployments from prefect.yaml, a process
worker, and the CLI as people use it. After allocation every task waits at the same time in a
flow run of its own; work is recorded when it was done; acceptance is presumed, and a challenge
about risk or a disputed refusal are tasks of their own."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import demo_form
from support.cli import cli, cli_command
from support.transfers import AFTER_ALLOCATION, ALLOCATION, COMPLETION, RAISED
from support.transfers import raise_form as raise_any
from support.waits import prefect_api, resume_form, state_of, wait_for

from tasks.domain import transfer_views, transfers
from tasks.settings import ROOT

pytestmark = pytest.mark.prefect

def raise_form(tmp_path: Path, **changes) -> str:
    changes.setdefault("raised_on", RAISED)
    return raise_any(tmp_path, **changes)


def task_runs(stack, reference: str) -> dict[str, str]:
    """Flow run name -> state type of every run tagged with the transfer's reference."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with prefect_api(stack), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[reference])))
    return {r.name: r.state.type.value if r.state else "" for r in runs}


def open_tasks(reference: str) -> set[str]:
    return {t.task for t in transfer_views.status_of(reference).tasks if t.flow_run_id}


def allocate(reference: str) -> None:
    # Right after `raise` the allocation task is still starting: record waits for it to open.
    assert "allocation recorded" in cli("record", reference, "allocation", *ALLOCATION).stdout


def parent_caught_up(reference: str) -> bool:
    wake, seen, run_id, _ = transfer_views.wake_state(reference)
    return seen >= wake


@pytest.mark.quick
def test_after_allocation_the_tasks_wait_at_once_and_are_recorded_in_any_order_dated_when_done(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200001")
    allocate(reference)
    wait_for(lambda: set(AFTER_ALLOCATION) <= open_tasks(reference), what="the tasks after allocation to open")
    # Police checks came back on day 2: recorded before the address assessment, dated when they came back.
    assert "police_checks recorded" in cli("record", reference, "police_checks", *AFTER_ALLOCATION["police_checks"]).stdout
    runs = wait_for(
        lambda: (r := task_runs(prefect_stack, reference))
        and all(r.get(f"{t.replace('_', '-')}-{reference}") == "PAUSED" for t in AFTER_ALLOCATION if t != "police_checks")
        and r[f"police-checks-{reference}"] == "COMPLETED"
        and r,
        what="the other tasks to be suspended and police checks' run to finish",
        show=lambda: task_runs(prefect_stack, reference),
    )
    assert runs[f"allocation-{reference}"] == "COMPLETED"
    # Each waits with its own form in the UI.
    address_run = next(t.flow_run_id for t in transfer_views.status_of(reference).tasks if t.task == "address_assessment")
    from prefect.client.orchestration import get_client

    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        schema = wait_for(lambda: resume_form(client, address_run, "address-assessment-r1-0"), what="the address form")
    assert {"method", "suitable", "done_on"} <= set(schema["properties"]) and reference in schema["description"]
    # Completion does not open while work it needs is open, and says what it waits for.
    early = cli("record", reference, "completion", *COMPLETION, "--timeout", "5", check=False)
    assert early.returncode == 2 and "completion waits for" in early.stderr and "Receive the documents" in early.stderr
    for task in ("documents", "handover", "safeguarding_checks", "address_assessment"):
        cli("record", reference, task, *AFTER_ALLOCATION[task])
    assert "completion recorded" in cli("record", reference, "completion", *COMPLETION).stdout
    flow_run_id = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the transfer's run to complete")
    view = transfer_views.status_of(reference)
    done = {a.code: a.done_on.isoformat() for a in view.actions if a.done_on}
    assert done["police_checks"] == "2026-12-16" and done["allocate"] == "2026-12-15" and done["address_assessment"] == "2026-12-18"
    assert view.status == "completed"
    status = cli("status", reference).stdout
    assert "done 2026-12-16" in status  # the history says when the work was done
    steps = [h.event for h in view.history if h.event in {"allocation", *AFTER_ALLOCATION, "completion"}]
    assert len(steps) == len(set(steps)) == 7


def test_a_corrected_done_date_shows_in_status_and_the_history_keeps_both(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200002")
    allocate(reference)
    cli("record", reference, "police_checks", *AFTER_ALLOCATION["police_checks"])
    fixed = cli("correct", reference, "police_checks", "--done-on", "2026-12-17", "--reason", "Misread the email", "--by", "Admin A")
    assert "was 2026-12-16" in fixed.stdout
    view = transfer_views.status_of(reference)
    assert next(a for a in view.actions if a.code == "police_checks").done_on.isoformat() == "2026-12-17"
    details = [h.detail for h in view.history]
    assert any("done 2026-12-16" in d for d in details) and any("2026-12-17 (was 2026-12-16): Misread the email" in d for d in details)
    future = cli("correct", reference, "police_checks", "--done-on", "2027-01-04", "--reason", "x", check=False)
    assert future.returncode == 2 and "done_on" in future.stderr and "future" in future.stderr
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_a_challenge_upheld_only_for_no_local_connection_is_refused_and_a_withdrawn_one_lets_it_complete(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200003")
    allocate(reference)
    out = cli("challenge", reference, "--concern", "Victim lives two streets away", "--role", "receiving_pp", "--by", "Pat Receiver")
    assert "challenge-1" in out.stdout
    second = cli("challenge", reference, "--concern", "again", "--by", "Pat", check=False)
    assert second.returncode == 2 and "one at a time" in second.stderr
    weak = cli("record", reference, "challenge-1", "--outcome", "uphold", "--reasons", "No local connection", "--recorded-by", "Kim SPO",
               check=False)  # fmt: skip
    assert weak.returncode == 2 and "not enough by itself" in weak.stderr and "Refusal of a case transfer should only" in weak.stderr
    assert "challenge-1 recorded" in cli("record", reference, "challenge-1", "--outcome", "withdraw", "--recorded-by", "Kim SPO").stdout
    for task in AFTER_ALLOCATION:
        cli("record", reference, task, *AFTER_ALLOCATION[task])
    cli("record", reference, "completion", *COMPLETION)
    assert transfer_views.status_of(reference).status == "completed"
    assert transfer_views.status_of(reference).challenges[0].status == "withdrawn"


def test_a_refusal_disputed_and_overturned_reopens_the_tasks_as_they_stood_and_completes(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200004")
    allocate(reference)
    cli("record", reference, "documents", *AFTER_ALLOCATION["documents"])
    cli("challenge", reference, "--concern", "Risk to a known victim nearby", "--role", "receiving_spo", "--by", "Kim SPO")
    cli("record", reference, "challenge-1", "--outcome", "uphold", "--reasons",
        "Risk of harm would increase and could not be managed at the new address", "--evidence", "Victim at 12 Oak Road",
        "--recorded-by", "Kim SPO")  # fmt: skip
    first_run = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: state_of(prefect_stack, first_run) == "COMPLETED", what="the refused transfer's run to finish")
    assert transfer_views.status_of(reference).status == "refused"
    wait_for(
        lambda: all(s in ("CANCELLED", "COMPLETED") for s in task_runs(prefect_stack, reference).values()),
        what="the open tasks to be cancelled",
    )
    cli("dispute", reference, "--grounds", "The victim moved away in 2025", "--by", "Jo SPO")
    assert "dispute-1 recorded" in cli("record", reference, "dispute-1", "--outcome", "overturn", "--notes",
                                       "Victim no longer local", "--recorded-by", "Head of PDU").stdout  # fmt: skip
    # The tasks reopen as they stood: documents stay done, the rest open again in a new round.
    wait_for(lambda: {"police_checks", "address_assessment", "handover"} <= open_tasks(reference), what="the tasks to reopen")
    assert "documents" not in open_tasks(reference)
    for task in AFTER_ALLOCATION:
        if task != "documents":
            cli("record", reference, task, *AFTER_ALLOCATION[task])
    cli("record", reference, "completion", *COMPLETION)
    view = transfer_views.status_of(reference)
    assert view.status == "completed" and view.challenges[0].dispute_status == "overturned"
    wait_for(lambda: state_of(prefect_stack, view.flow_run_id or "") == "COMPLETED", what="the second run to complete")


def test_a_wake_up_sent_between_the_transfers_read_and_its_suspension_is_not_lost(prefect_stack, tmp_path):
    from services import raise_transfer
    from tasks.domain.form import parse_form

    with prefect_api(prefect_stack):
        # This transfer's run waits 15 s between reading the store and suspending, every time.
        reference, flow_run_id = raise_transfer(
            parse_form(demo_form(crn="C200005", raised_on=RAISED)),
            job_variables={"env": {"CASETRANSFER_FAULT_WAKE_DELAY_SECONDS": "15"}},
        )
    allocate(reference)
    wait_for(lambda: "documents" in open_tasks(reference), what="documents to open")
    cli("record", reference, "documents", *AFTER_ALLOCATION["documents"])
    in_window = state_of(prefect_stack, flow_run_id)
    # Two tasks finishing together.
    both = [
        subprocess.Popen(cli_command("record", reference, t, *AFTER_ALLOCATION[t]), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for t in ("police_checks", "safeguarding_checks")
    ]  # fmt: skip
    for p in both:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    assert in_window in ("RUNNING", "SCHEDULED", "PENDING")  # the documents' wake-up met the run awake
    wait_for(lambda: parent_caught_up(reference) and state_of(prefect_stack, flow_run_id) == "PAUSED", timeout=120,
             what="the transfer's run to read every change and suspend")  # fmt: skip
    for task in ("handover", "address_assessment"):
        cli("record", reference, task, *AFTER_ALLOCATION[task])
    # Completion opens only if the run saw every one of the five: none was lost.
    assert "completion recorded" in cli("record", reference, "completion", *COMPLETION, "--timeout", "180").stdout


def test_withdrawal_cancels_the_transfer_and_every_task_still_open(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200006")
    allocate(reference)
    wait_for(lambda: set(AFTER_ALLOCATION) <= open_tasks(reference), what="the tasks to open")
    flow_run_id = transfer_views.status_of(reference).flow_run_id or ""
    cli("withdraw", reference, "--reason", "No longer moving", "--by", "Sam")
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "CANCELLED", what="the transfer's run to be cancelled")
    runs = wait_for(
        lambda: (r := task_runs(prefect_stack, reference)) and all(s in ("CANCELLED", "COMPLETED") for s in r.values()) and r,
        what="every task run to stop",
        show=lambda: task_runs(prefect_stack, reference),
    )
    assert sum(1 for s in runs.values() if s == "CANCELLED") >= len(AFTER_ALLOCATION)
    late = cli("record", reference, "police_checks", *AFTER_ALLOCATION["police_checks"], check=False)
    assert late.returncode == 2 and "withdrawn" in late.stderr


def test_a_transfer_withdrawn_while_its_run_is_awake_stays_cancelled(prefect_stack, tmp_path):
    from services import raise_transfer
    from tasks.domain.form import parse_form

    with prefect_api(prefect_stack):
        # The run waits 15 s between reading the store and suspending: the withdrawal lands there.
        reference, flow_run_id = raise_transfer(
            parse_form(demo_form(crn="C200009", raised_on=RAISED)),
            job_variables={"env": {"CASETRANSFER_FAULT_WAKE_DELAY_SECONDS": "15"}},
        )
    wait_for(lambda: "allocation" in open_tasks(reference), what="allocation to open")
    assert state_of(prefect_stack, flow_run_id) == "RUNNING"  # read the store, not yet suspended
    cli("withdraw", reference, "--reason", "Moving elsewhere", "--by", "Sam")
    # Prefect refuses to suspend the stopped run; it ends leaving the Cancelled the withdrawal set.
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "CANCELLED", what="the transfer's run to be cancelled")
    time.sleep(20)  # past the run's window: it has tried to suspend by now
    assert state_of(prefect_stack, flow_run_id) == "CANCELLED"
    assert transfer_views.status_of(reference).status == "withdrawn"


def test_the_action_list_artifact_is_rewritten_at_each_change(prefect_stack, tmp_path):
    from prefect.client.orchestration import get_client

    reference = raise_form(tmp_path, crn="C200007", lao=True)
    allocate(reference)
    cli("record", reference, "documents", *AFTER_ALLOCATION["documents"])
    key = f"action-list-{reference.lower()}"

    def latest() -> str | None:
        with prefect_api(prefect_stack), get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        text = max(found, key=lambda a: a.created).data if found else None
        return text if text and "| Receive the documents from the transferring area | admin |" in text and "16 Dec 2026" in text else None

    text = str(wait_for(latest, what="the Action List with documents done"))
    assert "/runs/flow-run/" in text and "Written" in text
    form = demo_form()
    for personal in (form["name"], form["proposed_address"], form["current_address"], "C200007"):
        assert personal not in text  # references and dates only: an LAO case's CRN is not there either
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_record_lists_a_steps_fields(prefect_stack, tmp_path):
    out = cli("record", "CT999999", "police_checks", "--help").stdout
    assert "--returned-on" in out and "--done-on" in out and "--recorded-by" in out


def test_a_lost_wake_up_is_sent_again_by_recover(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="C200008")
    allocate(reference)
    run_id = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: parent_caught_up(reference) and state_of(prefect_stack, run_id) == "PAUSED", what="the run to suspend")
    # Documents marked done straight in the store: committed, and nobody woke the transfer's run.
    transfers.mark_action_done(reference, "documents", "Admin A")
    assert not parent_caught_up(reference)
    # Only the wake-up is re-sent: running runs are left alone (they are not lost).
    assert reference in cli("recover", "--wake-after", "0").stdout
    wait_for(lambda: parent_caught_up(reference), what="the transfer's run to read the change")
    # The documents task no longer applies, so its run is cancelled rather than left waiting.
    wait_for(lambda: task_runs(prefect_stack, reference).get(f"documents-{reference}") == "CANCELLED", what="documents' run to stop")
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")

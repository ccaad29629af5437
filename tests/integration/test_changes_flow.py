"""Transfers that change, for real (issue 25): a Prefect server, the deployments from prefect.yaml,
a process worker and the CLI as people use it. A new destination after allocation re-opens the
receiving side's tasks for the new PDU; a rise in risk opens the high-RoSH tasks and a fall
cancels them; a refusal is told to the transferring side by a run the transfer's run starts."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

import pytest
from support.cli import cli
from support.transfers import ALLOCATION, RAISED
from support.transfers import raise_form as raise_any
from support.waits import wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect

HIGH_ROSH_TASKS = {"transfer_report", "full_information", "aco_involvement"}


def task_runs(stack, reference: str) -> dict[str, str]:
    """Flow run name -> state type of every run tagged with the transfer's reference."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from support.waits import prefect_api

    with prefect_api(stack), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[reference])))
    return {r.name: r.state.type.value if r.state else "" for r in runs}


def raise_form(tmp_path: Path, **changes: object) -> str:
    changes.setdefault("raised_on", RAISED)
    return raise_any(tmp_path, **changes)


def open_runs(reference: str) -> dict[str, tuple[int, str]]:
    """task -> (round, flow run id) of every open task with its run started."""
    return {t.task: (t.round, t.flow_run_id) for t in transfer_views.status_of(reference).tasks if t.flow_run_id}


def test_a_new_destination_after_allocation_reopens_the_receiving_tasks_for_the_new_pdu(prefect_stack, tmp_path: Path) -> None:
    ref = raise_form(tmp_path, crn="A250001")
    assert "allocation recorded" in cli("record", ref, "allocation", *ALLOCATION).stdout
    wait_for(lambda: {"address_assessment", "police_checks"} <= set(open_runs(ref)), what="the tasks after allocation")
    before = open_runs(ref)
    out = cli("amend", ref, "--postcode", "BL1 1RU", "--address", "1 New Street, Bolton", "--reason", "Moving to Bolton",
              "--by", "Sam Practitioner").stdout  # fmt: skip
    assert "Manchester South" in out and "Bolton" in out
    # The old PDU's task runs are stopped; allocation waits again, for Bolton's SPO.
    # The transferring side's own work (sending the documents) is not the receiving PDU's: it stays open.
    wait_for(
        lambda: set(open_runs(ref)) - {"documents_sent"} == {"allocation"}, 120, "allocation to reopen alone",
        show=lambda: sorted(open_runs(ref)),
    )  # fmt: skip
    runs = task_runs(prefect_stack, ref)
    old_assessment = [name for name in runs if name.startswith("address-assessment-")]
    wait_for(lambda: task_runs(prefect_stack, ref)[old_assessment[0]] == "CANCELLED", 60, "the old assessment run to stop")
    assert open_runs(ref)["allocation"][0] == 2
    bolton = ["--practitioner", "Robin Bolton", "--team-code", "N50CAM", "--recorded-by", "Lee SPO"]
    assert "allocation recorded" in cli("record", ref, "allocation", *bolton).stdout
    wait_for(lambda: "address_assessment" in open_runs(ref), 120, "the new address's assessment to open")
    again = open_runs(ref)["address_assessment"]
    assert again[0] == 2 and again[1] != before["address_assessment"][1]
    status = cli("status", ref).stdout
    assert "destination changed" in status and "Robin Bolton" in status


def test_a_task_left_open_when_another_pdu_is_named_is_listed_for_that_pdus_people(prefect_stack, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from support.waits import prefect_api

    ref = raise_form(tmp_path, crn="A250004")
    assert "allocation recorded" in cli("record", ref, "allocation", *ALLOCATION).stdout
    police = ["--returned-on", "2026-12-16", "--concerns", "true", "--recorded-by", "Admin A"]
    assert "police_checks recorded" in cli("record", ref, "police_checks", *police).stdout
    wait_for(lambda: "concerns_decision" in open_runs(ref), 120, "the SPO's decision on the concerns to open")
    decision = open_runs(ref)["concerns_decision"][1]

    def tags() -> list[str]:
        with prefect_api(prefect_stack), get_client(sync_client=True) as client:
            return client.read_flow_run(UUID(decision)).tags

    assert "pdu:N50GMS" in tags()  # Manchester South's receiving SPO
    cli("amend", ref, "--pdu", "N50BOLT", "--reason", "Bolton will supervise", "--by", "Sam Practitioner")

    # The police checks stand, so the decision stays open, in the list Bolton's SPO is sent to.
    wait_for(lambda: "allocation" in open_runs(ref), 120, "allocation to reopen for Bolton")
    assert open_runs(ref)["concerns_decision"][1] == decision
    assert "pdu:N50BOLT" in tags() and "pdu:N50GMS" not in tags() and "owner:receiving_spo" in tags()


def test_risk_raised_opens_the_high_rosh_tasks_and_lowered_cancels_them(prefect_stack, tmp_path: Path) -> None:
    ref = raise_form(tmp_path, crn="A250002", rosh="Medium", mappa_category=None, mappa_level=None)
    assert "allocation recorded" in cli("record", ref, "allocation", *ALLOCATION).stdout
    cli("amend", ref, "--rosh", "High", "--reason", "New intelligence", "--by", "Sam Practitioner")
    wait_for(lambda: HIGH_ROSH_TASKS <= set(open_runs(ref)), 120, "the high-RoSH tasks to open")
    opened = {t: open_runs(ref)[t][1] for t in HIGH_ROSH_TASKS}
    cli("amend", ref, "--rosh", "Medium", "--reason", "Reassessed", "--by", "Sam Practitioner")
    wait_for(lambda: not HIGH_ROSH_TASKS & set(open_runs(ref)), 120, "the high-RoSH tasks to close")
    from support.waits import state_of

    wait_for(lambda: all(state_of(prefect_stack, run) == "CANCELLED" for run in opened.values()), 60, "their runs to stop")
    assert {a.status for a in transfer_views.status_of(ref).actions if a.code in HIGH_ROSH_TASKS} == {"not_required"}


def test_a_refusal_is_told_to_the_transferring_spo_within_a_minute_naming_the_dispute_deadline(prefect_stack, tmp_path: Path) -> None:
    outbox = Path(os.environ["CASETRANSFER_OUTBOX"])
    ref = raise_form(tmp_path, crn="A250003")
    assert "allocation recorded" in cli("record", ref, "allocation", *ALLOCATION).stdout
    cli("challenge", ref, "--concern", "Victim lives nearby", "--role", "receiving_pp", "--by", "Pat Receiver")
    cli("record", ref, "challenge-1", "--outcome", "uphold", "--reasons",
        "Risk of harm would increase and could not be managed at the new address",
        "--evidence", "Police confirm the victim's address", "--recorded-by", "Kim SPO")  # fmt: skip

    def refusal_notices() -> list[str]:
        texts = [p.read_text() for p in outbox.glob("notice_*.eml")]
        return [t for t in texts if ref in t and "Transfer refused" in t]

    wait_for(lambda: len(refusal_notices()) == 1, 60, "the refusal's notice")
    assert "dispute by" in refusal_notices()[0]

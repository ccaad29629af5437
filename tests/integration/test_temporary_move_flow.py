"""The temporary-move flow for real (adult profile): served deployment, suspend and resume,
the CLI and the UI's Run form; returned, and converted to a linked case-transfer run."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest
import yaml
from conftest import demo_form
from support.cli import cli
from support.transfers import raise_form, waiting_at
from support.waits import prefect_api, state_of, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect

TM = {"nsi_type": "temporary_move", "temporary_reason": "Caring for a parent after surgery", "expected_return_date": "2027-02-26"}
SUPPORT = ["--support-contact", "Pat Receiver", "--team-code", "N50CAD", "--recorded-by", "Kim SPO"]


def status_is(reference: str, status: str, step: str | None) -> Callable[[], bool]:
    return lambda: transfer_views.nsi_status(reference) == (status, step)


def run_name(stack, flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with prefect_api(stack), get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).name


def test_a_temporary_move_supports_while_the_transferring_practitioner_stays_responsible_then_returns(prefect_stack, tmp_path):
    bad = tmp_path / "released.yaml"
    bad.write_text(yaml.safe_dump(demo_form(crn="M200009", **TM, released_from_custody=True)))
    refused = cli("raise", str(bad), check=False)
    assert (
        refused.returncode == 2
        and "nsi_type: a person released to live in the receiving area is a Case Transfer" in refused.stderr
    )

    reference = raise_form(tmp_path, crn="M200001", **TM)
    assert reference.startswith("TM")
    flow_run_id = transfer_views.status_of(reference).flow_run_id
    assert flow_run_id and run_name(prefect_stack, flow_run_id) == f"move-{reference}"
    wait_for(status_is(reference, "awaiting_support_allocation", "support_allocation"), what="the support allocation")
    assert "status supporting" in cli("record", reference, "support_allocation", *SUPPORT).stdout
    wait_for(status_is(reference, "supporting", "outcome"), what="the supporting period")
    status = cli("status", reference).stdout
    assert "status: supporting" in status
    assert "responsible practitioner: Sam Practitioner (transferring)" in status and "support contact: Pat Receiver" in status
    assert "Review: full transfer presumed" in status and "2027-03-21" in status

    out = cli("record", reference, "outcome", "--outcome", "returned", "--on", "2026-12-21", "--recorded-by", "Sam Practitioner")
    assert "status returned" in out.stdout
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the run to complete")
    view = transfer_views.status_of(reference)
    review = next(a for a in view.actions if a.code == "case_review")
    assert (view.status, review.status, review.owner_role) == ("returned", "open", "transferring_pp")
    events = [(h.event, h.detail) for h in view.history]
    assert len(events) == len(set(events))


def test_a_move_raised_from_the_ui_and_converted_starts_one_linked_case_transfer_run(prefect_stack):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.states import Scheduled

    from prefect_runs import engine

    # The UI's Run form: the form's type left at its default, the temporary fields filled in.
    form = demo_form(crn="M200002", temporary_reason=TM["temporary_reason"], expected_return_date=TM["expected_return_date"])
    with prefect_api(prefect_stack):
        flow_run_id = engine.start_run("temporary-move/temporary-move", {"form": form})
    reference = wait_for(
        lambda: next((r for r, f in transfer_views.open_flow_runs() if f == flow_run_id), None), what="the flow to raise the NSI"
    )
    assert reference.startswith("TM") and transfer_views.status_of(reference).nsi_type == "temporary_move"
    wait_for(waiting_at(reference, "support_allocation"), what="the support allocation")
    cli("record", reference, "support_allocation", *SUPPORT)
    wait_for(status_is(reference, "supporting", "outcome"), what="the supporting period")
    cli(
        "record",
        reference,
        "outcome",
        "--outcome",
        "converted",
        "--notes",
        "Settled; staying",
        "--recorded-by",
        "Sam",
        "--no-wait",
    )
    wait_for(lambda: transfer_views.status_of(reference).status == "converted", what="the move to close as converted")
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the move's run to complete")

    old = transfer_views.status_of(reference)
    assert old.converted_to
    new = transfer_views.status_of(old.converted_to)
    assert (new.nsi_type, new.parent_reference, new.crn) == ("case_transfer", reference, "M200002")
    assert [h.detail for h in old.history if h.event == "converted"][0].startswith(f"converted to Case Transfer {new.reference}")
    assert f"converted from Temporary Move {reference}" in new.history[0].detail
    # The Case Transfer follows the concurrent shape: its run opens the allocation task.
    wait_for(lambda: any(t.task == "allocation" and t.flow_run_id for t in transfer_views.status_of(new.reference).tasks),
             what="the case-transfer run to open allocation")  # fmt: skip
    new_run = transfer_views.status_of(new.reference).flow_run_id
    assert new_run and new_run != flow_run_id and run_name(prefect_stack, new_run) == f"transfer-{new.reference}"

    # Starting it again under the same key gives the same run; re-running the move's flow
    # from the top (as recovery would) starts nothing new.
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        parameters = client.read_flow_run(UUID(new_run)).parameters
        assert parameters == {"reference": new.reference}  # the store holds the form; Prefect the reference
        again = engine.start_run("case-transfer/case-transfer", parameters, idempotency_key=f"convert-{reference}")
        assert again == new_run
        client.set_flow_run_state(UUID(flow_run_id), Scheduled(message="re-run from the top"), force=True)
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the re-run to complete")
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"transfer-{new.reference}"])))
    assert [str(r.id) for r in runs] == [new_run]
    assert transfer_views.status_of(reference).converted_to == new.reference

    # The Case Transfer carries on as any other.
    out = cli(
        "record", new.reference, "allocation", "--practitioner", "Pat Receiver", "--team-code", "N50CAD", "--recorded-by", "Kim"
    )
    assert "allocation recorded" in out.stdout

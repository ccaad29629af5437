"""The youth justice profile for real: a Case Transfer whose three-way meeting did not happen,
a stayed request, enforcement before transfer; a caretaking Temporary Move. The runs get the
profile through their job variables, beside adult runs on the same stack."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from conftest import demo_form
from test_case_transfer_flow import STEPS, _schema, cli, prefect_api, state_of, wait_for, waiting_at

from tasks import transfers
from tasks.form import parse_form

pytestmark = pytest.mark.prefect

YOUTH = {"env": {"CASETRANSFER_PROFILE": "youth"}}
SEQUENTIAL_YOUTH = {"env": {"CASETRANSFER_PROFILE": "youth", "CASETRANSFER_SHAPE_VERSION": "1"}}
YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man"}
YOUTH_ALLOCATION = ("allocation", ["--case-manager", "CM202", "--team-code", "N50CAD", "--recorded-by", "Kim TM"])
SUMMARY = {
    "parental_responsibility": "Mother, same address",
    "offence_details": "Robbery; no specific victim risk",
    "order_summary": "Eight sessions of twelve done; engaging",
    "documents": {"transfer_in_summary": "yes", "asset_plus": "yes", "transfer_questions": "yes", "record_of_contacts": "yes",
                  "order_or_licence": "yes", "cps_documentation": "yes"},
}  # fmt: skip


def raise_youth(stack, job_variables: dict = YOUTH, **changes) -> tuple[str, str]:
    from tasks.services import raise_transfer

    with prefect_api(stack):
        return raise_transfer(parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth"), job_variables=job_variables)


def test_a_youth_transfer_whose_three_way_meeting_did_not_happen_has_not_transferred(prefect_stack):
    from prefect.client.orchestration import get_client

    reference, flow_run_id = raise_youth(
        prefect_stack, SEQUENTIAL_YOUTH, crn="Y300001", sentence_type="Youth Rehabilitation Order", transfer_in=SUMMARY
    )
    assert transfers.status_of(reference).profile == "youth"
    for step, args in [YOUTH_ALLOCATION, *STEPS[1:4]]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(waiting_at(reference, "handover"), what="the three-way meeting")

    out = cli("record", reference, "handover", "--held-on", "2027-01-04", "--held", "false", "--recorded-by", "Sam").stdout
    assert "recorded as not transferred" in out and "the three-way meeting did not take place" in out
    assert "Waiting for handover again" in out
    wait_for(waiting_at(reference, "handover"), what="a new meeting")
    assert "handover" not in transfers.recorded_steps(reference)
    early = cli("record", reference, "completion", "--responsible-officer", "Pat Receiver", check=False)
    assert early.returncode == 2 and "the case has not transferred" in early.stderr

    out = cli(
        "record", reference, "handover", "--held-on", "2026-12-21", "--pop-attended", "false", "--recorded-by", "Sam"
    ).stdout
    assert "the young person did not attend" in out
    wait_for(waiting_at(reference, "handover"), what="another meeting")
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        form = wait_for(lambda: _schema(client, flow_run_id, "handover-2"), what="the third handover form")
    assert "has not transferred" in form["description"]
    history = transfers.status_of(reference).history
    assert [h.event for h in history].count("not transferred") == 2
    assert all("keeps case management responsibility" in h.detail for h in history if h.event == "not transferred")

    cli("record", reference, "handover", "--held-on", "2026-12-21", "--recorded-by", "Sam")
    wait_for(waiting_at(reference, "decision"), what="the decision")
    stay = ["--outcome", "stay", "--reasons", "Missing information", "--evidence", "No AssetPlus since June"]
    out = cli("record", reference, "decision", *stay, "--recorded-by", "Kim TM").stdout
    assert "recorded as stayed" in out and "Sent back to Sam Practitioner" in out
    wait_for(waiting_at(reference, "decision"), what="the decision again")
    cli("record", reference, "decision", "--outcome", "accept", "--recorded-by", "Kim TM")
    wait_for(waiting_at(reference, "completion"), what="completion")

    blocked = cli("record", reference, "completion", "--responsible-officer", "Pat Receiver", check=False)
    assert blocked.returncode == 2 and "enforcement_complete" in blocked.stderr
    cli("action-done", reference, "enforcement_complete", "--by", "Sam")
    cli("record", reference, "completion", "--responsible-officer", "Pat Receiver", "--recorded-by", "Kim TM")
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the run to complete")
    status = json.loads(cli("status", reference, "--json").stdout)
    assert status["status"] == "completed" and status["profile"] == "youth"
    assert [h["event"] for h in status["history"]].count("handover") == 1
    assert "formal transfer date" in next(h["detail"] for h in status["history"] if h["event"] == "handover")


def test_a_youth_caretaking_move_records_its_agreement_then_ends(prefect_stack):
    reference, flow_run_id = raise_youth(
        prefect_stack,
        crn="Y300002",
        nsi_type="temporary_move",
        temporary_reason="Bail placement",
        expected_return_date="2027-03-01",
    )
    wait_for(waiting_at(reference, "support_allocation"), what="the support allocation")
    support = ["--support-contact", "Pat Host", "--team-code", "N50CAD", "--contact-frequency-weeks", "4", "--recorded-by", "Kim TM"]
    missing = cli("record", reference, "support_allocation", *support, check=False)
    assert missing.returncode == 2 and "caretaking_from" in missing.stderr
    agreement = [
        "--caretaking-from", "2026-12-21", "--receiving-responsibilities", "Appointments; AssetPlus updates",
        "--home-responsibilities", "Planning; breach", "--review-date",
    ]  # fmt: skip
    late = cli("record", reference, "support_allocation", *support, *agreement, "2027-03-22", check=False)
    assert late.returncode == 2 and "review_date" in late.stderr and "21 March 2027" in late.stderr
    assert "status supporting" in cli("record", reference, "support_allocation", *support, *agreement, "2027-03-19").stdout
    wait_for(lambda: transfers.nsi_status(reference) == ("supporting", "outcome"), what="the supporting period")
    assert "review by 2027-03-19" in cli("status", reference).stdout
    cli("record", reference, "outcome", "--outcome", "ended", "--recorded-by", "Jo")
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the run to complete")
    assert transfers.status_of(reference).status == "ended"
    assert UUID(flow_run_id)

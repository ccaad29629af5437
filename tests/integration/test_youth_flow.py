"""The youth justice profile for real: a Case Transfer whose three-way meeting did not happen,
a stayed request, enforcement before transfer; a caretaking Temporary Move. The runs get the
profile through their job variables, beside adult runs on the same stack."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from conftest import demo_form
from support.cli import cli
from support.transfers import STEPS, waiting_at
from support.waits import prefect_api, resume_form, state_of, wait_for

from tasks.domain import transfer_views
from tasks.domain.form import parse_form

pytestmark = pytest.mark.prefect

YOUTH = {"env": {"CASETRANSFER_PROFILE": "youth"}}
YOUTH_FIELDS = {"saw_level": "Low", "gender_identity": "Boy or young man", "date_of_birth": "2010-05-17"}
YOUTH_ALLOCATION = ("allocation", ["--case-manager", "CM202", "--team-code", "N50CAD", "--recorded-by", "Kim TM"])
SUMMARY = {
    "parental_responsibility": "Mother, same address",
    "offence_details": "Robbery; no specific victim risk",
    "order_summary": "Eight sessions of twelve done; engaging",
    "documents": {"transfer_in_summary": "yes", "asset_plus": "yes", "transfer_questions": "yes", "record_of_contacts": "yes",
                  "order_or_licence": "yes", "cps_documentation": "yes"},
}  # fmt: skip


def raise_youth(stack, job_variables: dict = YOUTH, **changes) -> tuple[str, str]:
    from services import raise_transfer

    with prefect_api(stack):
        return raise_transfer(parse_form(demo_form(**{**YOUTH_FIELDS, **changes}), "youth"), job_variables=job_variables)


def test_a_youth_transfer_whose_three_way_meeting_did_not_happen_has_not_transferred(prefect_stack, sequential_shape):
    from prefect.client.orchestration import get_client

    reference, flow_run_id = raise_youth(
        prefect_stack, crn="Y300001", sentence_type="Youth Rehabilitation Order", transfer_in=SUMMARY
    )
    assert transfer_views.status_of(reference).profile == "youth"
    for step, args in [YOUTH_ALLOCATION, *STEPS[1:4]]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(waiting_at(reference, "handover"), what="the three-way meeting")

    out = cli("record", reference, "handover", "--held-on", "2027-01-04", "--held", "false", "--recorded-by", "Sam").stdout
    assert "recorded as not transferred" in out and "the three-way meeting did not take place" in out
    assert "Waiting for handover again" in out
    wait_for(waiting_at(reference, "handover"), what="a new meeting")
    assert "handover" not in transfer_views.recorded_steps(reference)
    early = cli("record", reference, "completion", "--responsible-officer", "Pat Receiver", check=False)
    assert early.returncode == 2 and "the case has not transferred" in early.stderr

    out = cli(
        "record", reference, "handover", "--held-on", "2026-12-21", "--pop-attended", "false", "--recorded-by", "Sam"
    ).stdout
    assert "the young person did not attend" in out
    wait_for(waiting_at(reference, "handover"), what="another meeting")
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        form = wait_for(lambda: resume_form(client, flow_run_id, "handover-2"), what="the third handover form")
    assert "has not transferred" in form["description"]
    history = transfer_views.status_of(reference).history
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
    wait_for(lambda: transfer_views.nsi_status(reference) == ("supporting", "outcome"), what="the supporting period")
    assert "review by 2027-03-19" in cli("status", reference).stdout
    cli("record", reference, "outcome", "--outcome", "ended", "--recorded-by", "Jo")
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the run to complete")
    assert transfer_views.status_of(reference).status == "ended"
    assert UUID(flow_run_id)


def owners(reference: str) -> dict[str, str]:
    """The waiting tasks whose runs have started, and whom each waits for."""
    return {t.task: t.owner_role for t in transfer_views.status_of(reference).tasks if t.flow_run_id}


def test_a_youth_transfer_waits_on_its_own_tasks_and_a_looked_after_child_is_caretaken(prefect_stack):
    """4.1, 2.2, 5.1, 5.3, 11.3, 11.4, 12.5, 12.9 on one concurrent transfer; 12.2, 12.5, 12.8 on a looked-after child."""
    orders = [{"parent": "Mother", "lives_with_young_person": True}, {"parent": "Father", "lives_with_young_person": False}]
    reference, _ = raise_youth(prefect_stack, crn="Y300003", saw_level="High", gender="Female",
                               gender_identity="Girl or young woman", parenting_orders=orders)  # fmt: skip
    assert transfer_views.shape_of(reference) == 2
    allocation = ["--team-code", "N50CAD", "--recorded-by", "Kim TM", "--contact-frequency-weeks", "2"]
    refused = cli("record", reference, "allocation", "--case-manager", "CM102", *allocation, check=False)
    assert refused.returncode == 2 and "4.1" in refused.stderr and "Band A" in refused.stderr
    refused = cli("record", reference, "allocation", "--case-manager", "CM202", *allocation, check=False)
    assert refused.returncode == 2 and "2.2" in refused.stderr
    cli("record", reference, "allocation", "--case-manager", "CM102", "--co-allocated-to", "CM201", *allocation)
    wanted = {"co_allocation_agreement": "receiving_spo", "address_assessment": "receiving_pp",
              "parenting_order_transfer": "transferring_pp", "parenting_order_papers": "transferring_pp"}  # fmt: skip
    wait_for(lambda: wanted.items() <= owners(reference).items(), what="the youth tasks to wait at once")
    assert "review_assessment" not in owners(reference) and "completion" not in owners(reference)
    assert "accepted on a caretaking basis" in cli("status", reference).stdout  # 12.5: a transfer in
    assert "contact_records" not in owners(reference)  # reminded and checked with action-done, not a task

    desktop = cli("record", reference, "address_assessment", "--method", "desktop", "--suitable", "true", "--recorded-by",
                  "Pat", check=False)  # fmt: skip
    assert desktop.returncode == 2 and "11.3" in desktop.stderr and "desktop assessment is not enough" in desktop.stderr
    cli("record", reference, "address_assessment", "--method", "home_visit", "--suitable", "true", "--recorded-by", "Pat")
    wait_for(lambda: "review_assessment" in owners(reference), what="the AssetPlus review after the home visit")

    cli("challenge", reference, "--concern", "Exploitation risk near the new address", "--role", "receiving_spo", "--by", "Kim TM")
    cli("record", reference, "challenge-1", "--outcome", "uphold", "--reasons",
        "Risk of harm would increase and could not be managed at the new address", "--evidence", "Police intelligence",
        "--recorded-by", "Kim TM")  # fmt: skip
    wait_for(lambda: transfer_views.status_of(reference).status == "refused", what="the refusal")
    cli("dispute", reference, "--grounds", "A safety plan manages it", "--by", "Alex Senior")
    wait_for(lambda: owners(reference).get("dispute-1") == "service_manager", what="the Service Manager's escalation")

    looked_after, _ = raise_youth(prefect_stack, crn="Y300004", looked_after=True, raised_on="2026-12-07", saw_level="High")
    assert looked_after.startswith("TM")
    wait_for(waiting_at(looked_after, "support_allocation"), what="caretaking's support allocation")
    assert "12.2: Children and young people who are looked after" in cli("status", looked_after).stdout
    support = [
        "--support-contact", "Pat Host", "--team-code", "N50CAD", "--caretaking-from", "2026-12-07",
        "--receiving-responsibilities", "Appointments", "--home-responsibilities", "Case management (12.2)",
        "--review-date", "2027-03-01", "--recorded-by", "Kim TM",
    ]  # fmt: skip
    weekly_too_rare = cli("record", looked_after, "support_allocation", *support, "--contact-frequency-weeks", "4", check=False)
    assert weekly_too_rare.returncode == 2 and "12.5" in weekly_too_rare.stderr
    cli("record", looked_after, "support_allocation", *support, "--contact-frequency-weeks", "2")
    wait_for(lambda: transfer_views.nsi_status(looked_after) == ("supporting", "outcome"), what="the caretaking period")
    records = next(a for a in transfer_views.status_of(looked_after).actions if a.code == "contact_records")
    assert records.due_on.isoformat() == "2026-12-21" and records.status == "open"
    cli("action-done", looked_after, "contact_records", "--by", "Jo")
    status = cli("status", looked_after).stdout
    assert "on time; next due 2027-01-04" in status

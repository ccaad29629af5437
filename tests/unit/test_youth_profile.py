"""The youth justice profile (004): its differences live in config/profiles/youth.yaml and are
read through policy flags. Pure rules: no store, no Prefect."""

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from conftest import demo_form

from flows.steps import validate_step
from tasks.calendar import get_calendar
from tasks.domain import transfers
from tasks.domain.actions import Clocks, Facts, plan_actions
from tasks.domain.decisions import RefusalReason, RuleBroken, check_decision
from tasks.domain.form import FormError, parse_form
from tasks.domain.policy import load_policy
from tasks.domain.profile_rules import decision_detail, handover_shortfall, not_final, open_required_actions
from tasks.settings import ROOT

D = dt.date
YOUTH, ADULT = load_policy("youth"), load_policy("adult")
MISSING, POOR = RefusalReason.missing_information, RefusalReason.poor_quality_assessment
SUMMARY = {
    "parental_responsibility": "Mother, same address",
    "offence_details": "Robbery; no specific victim risk",
    "order_summary": "Eight sessions of twelve done; engaging",
    "documents": {"transfer_in_summary": "yes", "asset_plus": "yes", "transfer_questions": "yes", "record_of_contacts": "yes",
                  "order_or_licence": "yes", "cps_documentation": "no"},
    "missing_reasons": "CPS bundle requested from the court",
}  # fmt: skip


def plan(policy=YOUTH, reallocation: dt.date | None = None, **changes):
    clocks = Clocks(raised=D(2026, 12, 21), received=D(2026, 12, 21), move=D(2026, 12, 21), reallocation=reallocation)
    return {a.code: a for a in plan_actions(Facts(parse_form(demo_form(**changes))), clocks, policy, get_calendar())}


def test_the_profiles_differ_by_config_flags_only():
    assert (YOUTH.handover_requires_attendance, YOUTH.information_refusals, YOUTH.internal_transfers) == (True, True, True)
    assert YOUTH.caretaking_agreement_required and YOUTH.handover_is_transfer_date and YOUTH.person == "young person"
    assert not (ADULT.handover_requires_attendance or ADULT.information_refusals or ADULT.internal_transfers)
    assert not ADULT.caretaking_agreement_required and ADULT.step_requires_actions == {}


def test_no_code_asks_which_profile_is_in_force():
    """Profiles are chosen in config: code reads policy flags, never the profile's name."""
    offenders = []
    for path in [*ROOT.glob("flows/**/*.py"), *ROOT.glob("ops/**/*.py"), *ROOT.glob("tasks/**/*.py")]:
        if path.name == "settings.py":  # where the profile setting itself is declared
            continue
        if re.search(r"""profile\s*[!=]=\s*["'](youth|adult)["']|["']youth["']\s*[!=]=""", path.read_text()):
            offenders.append(path.name)
    assert offenders == []


def test_youth_allocation_is_two_working_days_and_the_meeting_five_from_reallocation():
    assert plan()["allocate"].due_on == D(2026, 12, 23)
    assert "three_way_handover" not in plan()
    actions = plan(reallocation=D(2026, 12, 23))
    assert actions["three_way_handover"].due_on == D(2027, 1, 4)
    assert actions["three_way_handover"].title == "Hold the three-way meeting (formal transfer date)"


def test_youth_enforcement_is_completed_before_transfer_by_the_transferring_side():
    actions = plan(reallocation=D(2026, 12, 23))
    assert actions["enforcement_complete"].owner_role == "transferring_pp"
    assert actions["enforcement_complete"].due_on == D(2027, 1, 4)
    assert "enforcement_complete" not in plan(ADULT, reallocation=D(2026, 12, 23))
    assert YOUTH.step_requires_actions["completion"] == ["enforcement_complete", "mappa_endorsement"]


def test_youth_keeps_the_mappa_endorsement_for_levels_two_and_three():
    assert "mappa_endorsement" in plan(mappa_category=1, mappa_level=2)
    assert "mappa_endorsement" in plan(mappa_category=2, mappa_level=3)
    assert "mappa_endorsement" not in plan(mappa_category=1, mappa_level=1)


def test_youth_asks_for_the_transfer_in_summary_when_the_form_has_none():
    assert plan()["transfer_in_summary"].due_on == D(2026, 12, 22)  # one working day
    assert "transfer_in_summary" not in plan(transfer_in=SUMMARY)
    assert "transfer_in_summary" not in plan(ADULT)
    assert plan()["confirm_supervision"].step == "decision"


def test_the_transfer_in_checklist_needs_a_reason_for_each_missing_document():
    form = parse_form(demo_form(transfer_in=SUMMARY))
    assert form.transfer_in is not None and form.transfer_in.documents.missing() == ["cps_documentation"]
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(transfer_in={**SUMMARY, "missing_reasons": ""}))
    assert exc.value.problems[0][0] == "transfer_in" and "cps_documentation" in str(exc.value)


@pytest.mark.parametrize(
    "answer, shortfall",
    [
        ({"held_on": "2027-01-04"}, None),
        ({"held_on": "2027-01-04", "held": False}, "the three-way meeting did not take place"),
        ({"held_on": "2027-01-04", "pop_attended": False}, "the young person did not attend the three-way meeting"),
    ],
)
def test_a_youth_handover_transfers_the_case_only_when_held_with_the_young_person(answer, shortfall):
    assert handover_shortfall(YOUTH, answer) == shortfall
    assert handover_shortfall(ADULT, answer) is None
    pending = not_final(YOUTH, "handover", answer, "Sam (N07515)")
    assert (pending is None) == (shortfall is None)
    if pending:
        assert pending.event == "not transferred" and "has not transferred" in pending.detail
        assert "transferring team keeps case management responsibility" in pending.detail


def test_missing_information_can_stay_or_refuse_a_youth_request_saying_what_is_missing():
    check_decision("stay", [MISSING], "No AssetPlus since June", information_refusals=True)
    check_decision("refuse", [POOR], "AssetPlus not updated for a year", information_refusals=True)
    check_decision("refuse", [MISSING, RefusalReason.no_local_connection], "No order copy", information_refusals=True)
    with pytest.raises(RuleBroken) as exc:
        check_decision("stay", [MISSING], " ", information_refusals=True)
    assert exc.value.field == "evidence"
    with pytest.raises(RuleBroken) as exc:
        check_decision("stay", [RefusalReason.risk_unmanageable], "risk", information_refusals=True)
    assert exc.value.field == "reasons"


def test_the_adult_presumption_to_accept_is_intact_in_both_profiles():
    with pytest.raises(RuleBroken) as exc:
        check_decision("refuse", [MISSING], "No AssetPlus")
    assert exc.value.field == "reasons" and "not available" in str(exc.value)
    with pytest.raises(RuleBroken) as exc:
        check_decision("stay", [MISSING], "No AssetPlus")
    assert exc.value.field == "outcome"
    for flags in (False, True):
        with pytest.raises(RuleBroken, match="not enough by themselves"):
            check_decision("refuse", [RefusalReason.no_local_connection], "", information_refusals=flags)


def test_the_decision_form_follows_the_nsis_policy():
    stay = {"recorded_by": "Kim", "outcome": "stay", "reasons": [MISSING.value], "evidence": "No AssetPlus"}
    assert validate_step("decision", stay, YOUTH).outcome == "stay"
    with pytest.raises(FormError) as exc:
        validate_step("decision", stay, ADULT)
    assert exc.value.problems[0][0] == "outcome"


def test_a_stay_is_recorded_and_sent_back_a_refusal_for_missing_information_too():
    stay = {"outcome": "stay", "reasons": [MISSING.value], "evidence": "No AssetPlus since June"}
    pending = not_final(YOUTH, "decision", stay, "Sam Practitioner (N07515)")
    assert pending is not None and pending.event == "stayed"
    assert "Sent back to Sam Practitioner (N07515)" in pending.detail and "No AssetPlus since June" in pending.detail
    refusal = {"outcome": "refuse", "reasons": [MISSING.value], "evidence": "No order copy"}
    assert not_final(YOUTH, "decision", refusal, "Sam") is None
    assert "sent back to Sam" in decision_detail(refusal, "Sam")


@dataclass
class A:
    code: str
    title: str
    status: str


def test_actions_required_before_a_step_block_it_only_while_open():
    actions = [A("enforcement_complete", "Enforcement", "open"), A("mappa_endorsement", "MAPPA", "done"), A("other", "x", "open")]
    assert [a.code for a in open_required_actions(YOUTH, "completion", actions)] == ["enforcement_complete"]
    assert open_required_actions(ADULT, "completion", actions) == []


def test_youth_internal_transfers_are_placed_inside_the_pdu_adult_refuses_them():
    form = parse_form(demo_form(proposed_postcode="DA6 8DS", internal_transfer=True))
    placement = transfers.Placement("LDNBBG")
    assert transfers.check_placement(form, placement, YOUTH)[0] == "LDNBBG"
    with pytest.raises(FormError) as exc:
        transfers.check_placement(form, placement, ADULT)
    assert "internal move" in str(exc.value) and "not part of this service's policy" in str(exc.value)
    with pytest.raises(FormError, match="internal move"):
        transfers.check_placement(parse_form(demo_form(proposed_postcode="DA6 8DS")), placement, YOUTH)
    with pytest.raises(FormError) as exc:
        transfers.check_placement(parse_form(demo_form(internal_transfer=True)), transfers.Placement("N50GMS"), YOUTH)
    assert exc.value.problems[0][0] == "internal_transfer"


def test_an_internal_transfer_needs_the_managers_endorsement_before_allocation():
    actions = plan(internal_transfer=True, proposed_postcode="DA6 8DS")
    assert actions["internal_transfer_endorsement"].owner_role == "transferring_spo"
    assert "internal_transfer_endorsement" not in plan()
    assert YOUTH.step_requires_actions["allocation"] == ["internal_transfer_endorsement"]


def test_only_a_case_transfer_can_be_internal():
    with pytest.raises(FormError) as exc:
        parse_form(
            demo_form(nsi_type="temporary_move", temporary_reason="x", expected_return_date="2027-02-01", internal_transfer=True)
        )
    assert "internal_transfer" in {f for f, _ in exc.value.problems}

"""Who sees a limited access (LAO) case whole, and who may run each command as themselves: pure
rules over the staff list and config/access.yaml (tasks/domain/lao_access.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.domain import lao_access
from tasks.domain.lao_access import Parties, command_owners, default_list, may_see, restricted
from tasks.domain.staff import StaffError, access_rules, load_staff
from tasks.domain.transfer_views import ActionView, HistoryView, StatusView

NEWCASTLE, LEEDS, MANCHESTER = "N54NUTY", "N55LEE", "N50GMS"


@pytest.fixture
def staff():
    return load_staff()


def lao_case(lao: bool = True, practitioner: str | None = "casey  PRACTITIONER") -> Parties:
    named = {"transferring_practitioner": practitioner, "transferring_spo": "Someone Else", "receiving_practitioner": None}
    return Parties("CT000009", lao, NEWCASTLE, LEEDS, named)


def signins(people) -> set[str]:
    return {p.signin for p in people}


def test_the_default_list_is_the_named_practitioner_and_the_spos_of_both_sides(staff) -> None:
    assert signins(default_list(lao_case(), staff)) == {"casey.practitioner", "lee.spo"}


def test_a_practitioner_of_the_receiving_pdu_is_not_on_the_list_until_named(staff) -> None:
    robin = staff.by_signin("robin.practitioner")
    assert not may_see(robin, lao_case(), [], staff).allowed
    named = Parties("CT000009", True, NEWCASTLE, LEEDS, {"receiving_practitioner": "Robin Practitioner"})
    assert may_see(robin, named, [], staff).allowed


def test_someone_not_on_the_list_is_refused_with_the_reason_and_a_grant_lets_them_see(staff) -> None:
    kim = staff.by_signin("kim.spo")  # an SPO, but of Manchester: neither side of this case
    refused = may_see(kim, lao_case(), [], staff)
    assert not refused.allowed and "not on CT000009's access list" in refused.reason and "grant" in refused.reason
    assert may_see(kim, lao_case(), ["KIM.SPO"], staff).allowed


def test_ops_may_act_on_anything_but_see_an_lao_case_only_when_granted(staff) -> None:
    ops = staff.by_signin("ops.one")
    assert not may_see(ops, lao_case(), [], staff).allowed
    assert may_see(ops, lao_case(), ["ops.one"], staff).allowed


def test_a_case_that_is_not_limited_access_is_seen_whole_by_anyone(staff) -> None:
    assert may_see(None, lao_case(lao=False), [], staff).allowed
    assert not may_see(None, lao_case(), [], staff).allowed


def test_the_restricted_view_keeps_the_work_and_drops_the_persons_details() -> None:
    at = dt.datetime(2026, 12, 14, 9, 0, tzinfo=dt.UTC)
    view = StatusView(
        reference="CT000009", crn="L222333", name="Restricted Person", lao=True, nsi_type="case_transfer", status="awaiting",
        waiting_step=None, raised_on=dt.date(2026, 12, 14), due_on=dt.date(2027, 1, 11), transferring="Newcastle",
        receiving="Leeds", receiving_practitioner="Robin Practitioner", responsible_officer=None, flow_run_id=None,
        actions=[ActionView("allocate", "Allocate", "receiving_spo", dt.date(2026, 12, 21), "open", None, 0)],
        history=[HistoryView(at, "withdrawn", "Moved to 3 Trial Street", "Lee SPO", None), HistoryView(at, "note", "", "X", None)],
        notes=["Victim lives nearby"], conditions=["Exclusion zone: LS1"],
        contacts=[{"seq": 1, "kind": "absence", "notes": "Seen at 4 Secret Lane"}],
    )  # fmt: skip
    shown = restricted(view, "Restricted (LAO)")
    text = repr(shown)
    for secret in ("Restricted Person", "Trial Street", "Victim", "LS1", "Secret Lane"):
        assert secret not in text
    assert shown.name == "Restricted (LAO)" and shown.crn == "L222333"
    assert [h.detail for h in shown.history] == ["Restricted (LAO)", ""]
    assert shown.actions == view.actions and shown.history[0].actor == "Lee SPO"
    assert view.name == "Restricted Person"  # the view it was made from is left as it was


def test_every_command_names_owners_the_access_rules_know() -> None:
    owners = set(access_rules().owners)
    commands = lao_access.command_rules().commands
    assert {"withdraw", "grant", "amend", "absence"} <= set(commands)
    assert {(c, o) for c, listed in commands.items() for o in listed if o not in owners} == set()


def test_a_command_the_rules_do_not_list_is_refused_naming_it() -> None:
    assert command_owners("dispute") == ["transferring_spo"]
    with pytest.raises(StaffError, match="'shred' is not listed"):
        command_owners("shred")

"""Who may act: the staff list and the access rules as pure decisions (tasks/domain/staff.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.domain.staff import StaffError, load_staff, may_answer, recorded_actor

LONDON, MANCHESTER, LEEDS = "LDNBBG", "N50GMS", "N55LEE"


@pytest.fixture
def staff():
    return load_staff()


def test_every_example_person_is_marked_as_an_example(staff) -> None:
    assert staff.people and all(p.example for p in staff.people)


def test_the_receiving_spo_may_answer_a_challenge_about_risk(staff) -> None:
    decision = may_answer(staff.by_signin("kim.spo"), "receiving_spo", LONDON, MANCHESTER)
    assert decision.allowed and not decision.as_ops


def test_another_pdus_spo_is_refused_the_same_task_with_the_reason(staff) -> None:
    decision = may_answer(staff.by_signin("lee.spo"), "receiving_spo", LONDON, MANCHESTER)
    assert not decision.allowed
    assert "does not work in N50GMS" in decision.reason and "receiving" in decision.reason


def test_the_head_of_the_receiving_pdu_settles_a_dispute_and_a_practitioner_cannot(staff) -> None:
    assert may_answer(staff.by_signin("morgan.head"), "receiving_head", LONDON, MANCHESTER).allowed
    refused = may_answer(staff.by_signin("pat.receiver"), "receiving_head", LONDON, MANCHESTER)
    assert not refused.allowed and "head of PDU" in refused.reason


def test_the_transferring_side_cannot_answer_the_receiving_sides_task(staff) -> None:
    assert not may_answer(staff.by_signin("alex.senior"), "receiving_spo", LONDON, MANCHESTER).allowed
    assert may_answer(staff.by_signin("alex.senior"), "transferring_spo", LONDON, MANCHESTER).allowed


def test_ops_may_do_anything_and_it_says_so(staff) -> None:
    decision = may_answer(staff.by_signin("ops.one"), "receiving_head", LONDON, LEEDS)
    assert decision.allowed and decision.as_ops and "as ops" in decision.reason


def test_a_typed_name_is_never_the_actor_and_is_kept_on_behalf_only_where_allowed(staff) -> None:
    assert recorded_actor(staff.by_signin("pat.receiver"), "Morgan Head") == ("Pat Receiver", None)
    assert recorded_actor(staff.by_signin("admin.a"), "Pat Receiver") == ("Admin A", "Pat Receiver")
    assert recorded_actor(staff.by_signin("admin.a"), " admin  a ") == ("Admin A", None)


def test_sign_in_is_matched_without_regard_to_case_and_accounts_map_to_people(staff) -> None:
    assert staff.by_signin("KIM.SPO").name == "Kim SPO"
    assert staff.by_os_account("casetransfer").signin == "ops.one"
    assert staff.by_signin("nobody") is None


def test_a_staff_list_with_a_role_nobody_knows_is_refused_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "people.yaml"
    bad.write_text("people:\n  - {signin: a, name: A, staff_id: X1, roles: [boss]}\n")
    with pytest.raises(StaffError, match=r"people\[0\]\.roles\.0"):
        load_staff(bad)


def test_a_sign_in_listed_twice_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "people.yaml"
    bad.write_text("people:\n  - {signin: a, name: A, staff_id: X1, roles: [spo]}\n  - {signin: A, name: B, staff_id: X2, roles: [spo]}\n")
    with pytest.raises(StaffError, match="listed twice"):
        load_staff(bad)

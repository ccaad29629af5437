"""Restrictive conditions as data (tasks/domain/licence_conditions.py) and the conditions they
drive (tasks/domain/conditions.py): which areas an exclusion zone may name, which postcodes lie
inside one, and when the last OASys is too old for the transfer."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import demo_form

from tasks.domain import conditions
from tasks.domain.form import FormError, parse_form
from tasks.domain.licence_conditions import ExclusionZone, resolve_area


@pytest.mark.parametrize(
    ("written", "kind", "key"),
    [
        ("m8", "district", "M8"),
        ("SW1A", "district", "SW1A"),
        ("M8 8", "sector", "M8 8"),
        ("m145", "sector", "M14 5"),  # written without its space: no district has three digits
        ("Bolton", "local_authority", "E08000001"),
        ("e08000001", "local_authority", "E08000001"),
        ("N50BOLT", "pdu", "N50BOLT"),
    ],
)
def test_an_area_is_a_district_a_sector_or_a_place_the_locator_knows(written: str, kind: str, key: str) -> None:
    assert resolve_area(written) == (kind, key)


def test_an_unknown_area_names_what_an_area_may_be() -> None:
    with pytest.raises(ValueError, match="postcode district .* sector .* local authority or PDU"):
        resolve_area("Atlantis")


def zones(*areas: str) -> list[ExclusionZone]:
    return [ExclusionZone.model_validate(a) for a in areas]


def test_a_postcode_lies_in_its_district_and_its_sector_and_not_in_a_neighbours() -> None:
    assert conditions.zone_containing(zones("M14"), "M14 5TG") is not None
    assert conditions.zone_containing(zones("M14 5"), "M14 5TG") is not None
    assert conditions.zone_containing(zones("M14 6", "M1", "M145"), "M14 5TG") is not None  # "M145" is the sector M14 5
    assert conditions.zone_containing(zones("M14 6", "M1"), "M14 5TG") is None


def test_a_postcode_lies_in_the_local_authority_and_pdu_the_locator_places_it_in() -> None:
    assert conditions.zone_containing(zones("Bolton"), "BL1 1RU") is not None
    assert conditions.zone_containing(zones("N50BOLT"), "BL1 1RU") is not None
    assert conditions.zone_containing(zones("Manchester"), "BL1 1RU") is None


def test_the_oasys_is_out_of_date_past_the_configured_months_before_the_day_raised() -> None:
    months = conditions.condition_rules().oasys_max_age_months
    raised = dt.date(2026, 12, 14)
    limit = dt.date(2026, 12 - months, 14)
    assert conditions.oasys_out_of_date(parse_form(demo_form(raised_on=raised, last_oasys_date=limit - dt.timedelta(days=1))))
    assert not conditions.oasys_out_of_date(parse_form(demo_form(raised_on=raised, last_oasys_date=limit)))
    assert not conditions.oasys_out_of_date(parse_form(demo_form(raised_on=raised)))


def test_a_curfew_and_non_contact_conditions_are_fields_of_the_form_checked_like_the_rest() -> None:
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(curfew={"start": "25:00", "end": "07:00"}, non_contact=[{"with_whom": ""}]))
    assert {field for field, _ in exc.value.problems} == {"curfew.start", "non_contact.0.with_whom"}


def test_a_first_appointment_not_kept_says_whether_the_absence_was_acceptable_and_only_then() -> None:
    from tasks.domain import steps as registry
    from tasks.domain.policy import get_policy

    policy, today = get_policy(), dt.date(2026, 12, 21)
    with pytest.raises(FormError) as exc:
        registry.validate_answer("first_appointment_kept", {"recorded_by": "Pat", "kept": False}, policy, today)
    assert exc.value.problems == [("acceptable", "say whether the absence was acceptable (true or false)")]
    with pytest.raises(FormError) as exc:
        registry.validate_answer("first_appointment_kept", {"recorded_by": "Pat", "kept": True, "acceptable": False}, policy, today)
    assert exc.value.problems[0][0] == "acceptable"
    answer = registry.validate_answer("first_appointment_kept", {"recorded_by": "Pat", "kept": "false", "acceptable": "no"}, policy, today)
    assert answer.model_dump()["acceptable"] is False

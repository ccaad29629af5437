import pytest
from conftest import demo_form

from tasks.form import FormError, NsiType, normalise_postcode, parse_form


def fields(exc: FormError) -> set[str]:
    return {f for f, _ in exc.problems}


def test_the_demo_form_is_valid():
    form = parse_form(demo_form())
    assert form.crn == "X123456"
    assert form.proposed_postcode == "M14 5TG"


def test_postcodes_are_normalised_whatever_the_case_and_spacing():
    assert normalise_postcode(" sw1a  1aa ") == "SW1A 1AA"
    assert normalise_postcode("m145tg") == "M14 5TG"


def test_a_bad_form_names_every_bad_field():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(crn="123", rosh="Enormous", proposed_postcode="nowhere", date_of_birth="yesterday"))
    assert fields(exc.value) == {"crn", "rosh", "proposed_postcode", "date_of_birth"}
    assert "one letter and six digits" in str(exc.value)


def test_an_unknown_field_is_refused():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(favourite_colour="blue"))
    assert "favourite_colour" in fields(exc.value)


def test_mappa_level_without_category_is_refused():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(mappa_level=2))
    assert "mappa_category" in fields(exc.value)


def test_a_temporary_move_needs_its_reason_and_return_date():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(nsi_type="temporary_move"))
    assert {"temporary_reason", "expected_return_date"} <= fields(exc.value)


def test_release_to_live_in_the_receiving_area_is_a_transfer_not_a_temporary_move():
    with pytest.raises(FormError) as exc:
        parse_form(
            demo_form(
                nsi_type="temporary_move",
                temporary_reason="Release address",
                expected_return_date="2027-03-01",
                released_from_custody=True,
            )
        )
    assert "is a Case Transfer" in str(exc.value)
    form = parse_form(
        demo_form(
            nsi_type="temporary_move",
            temporary_reason="Hostel bed for six weeks",
            expected_return_date="2027-03-01",
            released_from_custody=True,
            post_release_accommodation_temporary=True,
        )
    )
    assert form.nsi_type is NsiType.temporary_move

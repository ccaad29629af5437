import datetime as dt

import pytest
import yaml
from conftest import demo_form
from pydantic import ValidationError

from tasks.demo.synthetic import generate
from tasks.demo.transfer_forms import form_dict
from tasks.domain.form import FormError, NsiType, TransferForm, age_on, normalise_postcode, parse_form
from tasks.domain.policy import get_policy, load_policy
from tasks.settings import ROOT, reset_settings


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


# Every problem at once; the day raised; the profile's age range (issue 12, part 7).


def test_a_bad_crn_and_a_future_date_of_birth_are_reported_together():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(crn="123", date_of_birth="2030-01-01"))
    assert fields(exc.value) == {"crn", "date_of_birth"}
    assert "date_of_birth: cannot be in the future" in str(exc.value)


def test_a_future_date_of_birth_is_refused_as_such_not_as_a_sentence_ending_before_it():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(date_of_birth="2030-01-01"))
    assert exc.value.problems == [("date_of_birth", "cannot be in the future (today is 2026-12-21)")]


def test_field_errors_cross_field_rules_and_profile_rules_come_in_one_error():
    with pytest.raises(FormError) as exc:
        parse_form(
            demo_form(crn="123", rosh="Enormous", mappa_level=2, date_of_birth="1900-01-01", sentence_end_date="2020-01-01")
        )
    assert fields(exc.value) == {"crn", "rosh", "mappa_category", "date_of_birth", "sentence_end_date"}
    assert all(rule for _, rule in exc.value.problems)
    assert len(str(exc.value).splitlines()) == 5


def test_a_sentence_that_ended_before_the_day_raised_is_refused():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(sentence_end_date="2020-05-01"))
    assert exc.value.problems == [
        ("sentence_end_date", "the sentence or licence ended on 2020-05-01, before the day raised (2026-12-21)")
    ]


def test_a_sentence_ending_on_the_day_raised_is_accepted():
    assert parse_form(demo_form(sentence_end_date="2026-12-21")).sentence_end_date == dt.date(2026, 12, 21)


def test_the_day_raised_is_raised_on_when_the_form_gives_it():
    form = parse_form(demo_form(raised_on="2026-05-01", sentence_end_date="2026-06-30"))
    assert form.raised_on == dt.date(2026, 5, 1)
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(raised_on="2026-07-01", sentence_end_date="2026-06-30"))
    assert "before the day raised (2026-07-01)" in str(exc.value)


def test_an_adult_form_for_a_seventeen_year_old_is_refused_naming_the_range():
    assert parse_form(demo_form(date_of_birth="2008-12-21")).date_of_birth == dt.date(2008, 12, 21)  # 18 today
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(date_of_birth="2008-12-22"))  # 18 tomorrow
    assert exc.value.problems == [
        ("date_of_birth", "aged 17 on the day raised (2026-12-21); the adult profile takes ages 18 to 110")
    ]


def test_an_adult_aged_over_110_on_the_day_raised_is_refused():
    parse_form(demo_form(date_of_birth="1916-01-01"))  # 110
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(date_of_birth="1906-01-01"))
    assert "aged 120" in str(exc.value) and fields(exc.value) == {"date_of_birth"}


def test_the_age_is_counted_on_raised_on_when_given():
    parse_form(demo_form(date_of_birth="2008-12-22", raised_on="2026-12-22", received_on=None))
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(date_of_birth="2008-12-22", raised_on="2026-12-20"))
    assert "aged 17 on the day raised (2026-12-20)" in str(exc.value)


@pytest.mark.parametrize(
    ("date_of_birth", "age", "accepted"),
    [("2016-12-22", 9, False), ("2016-12-21", 10, True), ("2008-01-01", 18, True), ("2007-12-21", 19, False)],
)
def test_the_youth_profile_takes_young_people_aged_ten_to_eighteen(date_of_birth, age, accepted):
    data = demo_form(date_of_birth=date_of_birth, saw_level="Low", gender_identity="Boy or young man")
    if accepted:
        assert parse_form(data, "youth").date_of_birth.isoformat() == date_of_birth
    else:
        with pytest.raises(FormError) as exc:
            parse_form(data, "youth")
        assert exc.value.problems == [
            ("date_of_birth", f"aged {age} on the day raised (2026-12-21); the youth profile takes ages 10 to 18")
        ]


def test_parse_form_uses_the_settings_profile_when_none_is_named(monkeypatch):
    monkeypatch.setenv("CASETRANSFER_PROFILE", "youth")
    reset_settings()
    get_policy.cache_clear()
    with pytest.raises(FormError) as exc:
        parse_form(demo_form())  # born 1990
    assert "the youth profile takes ages 10 to 18" in str(exc.value)


def test_the_age_range_is_each_profiles_config():
    assert (load_policy("adult").min_age, load_policy("adult").max_age) == (18, 110)
    assert (load_policy("youth").min_age, load_policy("youth").max_age) == (10, 18)


def test_a_29_february_birthday_comes_on_1_march_in_other_years():
    assert age_on(dt.date(2008, 2, 29), dt.date(2026, 2, 28)) == 17
    assert age_on(dt.date(2008, 2, 29), dt.date(2026, 3, 1)) == 18


def test_the_model_alone_keeps_only_the_rules_that_need_no_profile():
    # Prefect validates TransferForm as a flow parameter: a future birth is refused there too,
    # while the age range and the day raised are parse_form's (they need the profile and the day).
    with pytest.raises(ValidationError, match="date_of_birth: cannot be in the future"):
        TransferForm.model_validate(demo_form(date_of_birth="2030-01-01"))
    form = TransferForm.model_validate(demo_form(date_of_birth="2015-01-01", sentence_end_date="2020-01-01"))
    assert form.date_of_birth == dt.date(2015, 1, 1)


def test_an_unreadable_raised_on_is_reported_without_guessing_the_day_raised():
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(raised_on="soon", sentence_end_date="2020-01-01", mappa_level=1))
    assert fields(exc.value) == {"raised_on", "mappa_category"}


def test_every_demo_form_parses_under_its_profile():
    script = yaml.safe_load((ROOT / "demo" / "script.yaml").read_text())
    profiles = {item["form"]: item.get("profile") for item in script}
    forms = sorted((ROOT / "demo" / "forms").glob("*.yaml"))
    assert {f.name for f in forms} == set(profiles)
    for path in forms:
        assert parse_form(yaml.safe_load(path.read_text()), profiles[path.name]).crn


@pytest.mark.parametrize("profile", ["adult", "youth"])
def test_synthetic_seed_forms_pass_the_form_rules_of_their_profile(profile):
    policy = get_policy(profile)
    syn = generate(400, 11, dt.date(2026, 12, 21), policy=policy)
    ages = {
        age_on(f.date_of_birth, f.raised_on)
        for f in (parse_form(form_dict(syn.cols, i, syn.labels), profile) for i in range(syn.n))
    }
    assert policy.min_age <= min(ages) and max(ages) <= policy.max_age

"""Reading a legacy tracker's cells (issue 13): dates as trackers write them, headers however they
are spelt, places by code, name or postcode."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tasks.domain import import_mapping, import_rows, legacy_tracker
from tasks.places.estate import load_estate


@pytest.fixture
def mapping() -> import_mapping.TrackerMapping:
    import_mapping.load_mapping.cache_clear()
    return import_mapping.load_mapping()


@pytest.mark.parametrize(
    "cell",
    ["21/05/2026", " 21/05/2026 ", "21/05/26", "21.05.26", "21.05.2026", "2026-05-21", "21 May 2026", "21-May-26", 46163,
     "46163", dt.datetime(2026, 5, 21, 0, 0), dt.date(2026, 5, 21)],
)  # fmt: skip
def test_a_date_is_read_however_the_tracker_wrote_it(cell: object, mapping: import_mapping.TrackerMapping) -> None:
    assert legacy_tracker.parse_date(cell, mapping) == dt.date(2026, 5, 21)


@pytest.mark.parametrize("cell", [None, "", "  ", "N/A", "n/a ", "-", "TBC"])
def test_blank_and_not_applicable_cells_are_no_date(cell: object, mapping: import_mapping.TrackerMapping) -> None:
    assert legacy_tracker.parse_date(cell, mapping) is None


@pytest.mark.parametrize("cell", ["31/02/2026", "next week", "2026-13-01", True])
def test_a_cell_that_is_not_a_date_is_refused_with_its_value(cell: object, mapping: import_mapping.TrackerMapping) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        legacy_tracker.parse_date(cell, mapping)


def test_a_two_digit_year_of_birth_is_last_century(mapping: import_mapping.TrackerMapping) -> None:
    assert legacy_tracker.parse_date("04.03.65", mapping) == dt.date(1965, 3, 4)


def test_headers_match_ignoring_case_spaces_and_punctuation(mapping: import_mapping.TrackerMapping) -> None:
    for header in ("D.O.B.", "dob", " Date of Birth "):
        assert mapping.spellings[import_mapping.norm(header)] == "date_of_birth"
    assert mapping.spellings[import_mapping.norm("Home visit / address assessment")] == "address_assessment_on"


def test_a_place_is_found_by_team_code_pdu_code_or_name() -> None:
    estate = load_estate()
    assert import_rows.resolve_place("n50cad ", estate, None) == import_rows.Place("N50GMS", "N50CAD")
    assert import_rows.resolve_place("LDNBBG", estate, None) == import_rows.Place("LDNBBG", None)
    assert import_rows.resolve_place("Greenwich and Bexley", estate, None) == import_rows.Place("LDNBBG", None)
    with pytest.raises(ValueError, match="not a PDU or team"):
        import_rows.resolve_place("Atlantis", estate, None)


def test_a_region_mapping_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("columns:\n  shoe_size: [Shoes]\n")
    with pytest.raises(import_mapping.UnreadableTracker, match="shoe_size"):
        import_mapping.load_mapping(bad)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_header_matches: 'three'\n", "min_header_matches: 'three' is not a whole number"),
        ("columns:\n  crn: 12345\n", "columns.crn: 12345 is not a header or a list of headers"),
        ("columns:\n  crn: {a: b}\n", "columns.crn: "),
        ("columns:\n  documents_on: ['-']\n", "columns.documents_on: '-' has no letter or digit"),
        ("columns: [CRN]\n", "columns: give each field"),
        ("not_applicable: 7\n", "not_applicable: 7 is not a word"),
        ("sentence_types:\n  Community Ordr: [CO]\n", "sentence_types.Community Ordr: not one of"),
        ("nsi_type_when_not_given: maybe\n", "nsi_type_when_not_given: 'maybe'"),
        ("colums:\n  crn: [Ref]\n", "unknown keys colums"),
    ],
)
def test_a_mapping_value_of_the_wrong_kind_is_refused_naming_its_key(tmp_path: Path, text: str, key: str) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text(text)
    import_mapping.load_mapping.cache_clear()
    with pytest.raises(import_mapping.UnreadableTracker, match=re.escape(key)):
        import_mapping.load_mapping(bad)


def test_a_mapping_value_may_be_one_header_and_is_never_split_into_characters(tmp_path: Path) -> None:
    one = tmp_path / "m.yaml"
    one.write_text("columns:\n  documents_on: Docs rec'd\n")
    import_mapping.load_mapping.cache_clear()
    mapping = import_mapping.load_mapping(one)
    assert mapping.spellings[import_mapping.norm("Docs rec'd")] == "documents_on"
    assert "" not in mapping.spellings and "d" not in mapping.spellings


@pytest.mark.parametrize("cell", ["Not applicable", "n/a", "NA", "N/A ", "-", "not  applicable"])
def test_not_applicable_is_read_however_it_is_written(cell: str, mapping: import_mapping.TrackerMapping) -> None:
    assert legacy_tracker.parse_date(cell, mapping) is None
    assert import_mapping.norm(cell) in mapping.not_applicable

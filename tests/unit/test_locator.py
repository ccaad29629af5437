"""National PDU locator against the real ONS Postcode Directory and the real estate tables (no mocks)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from functools import lru_cache
from pathlib import Path

import brotli
import msgpack
import numpy as np
import pytest

from tasks.places.estate import estate_dir, load_estate
from tasks.places.locator import (
    Location,
    Locator,
    LocatorError,
    MalformedPostcode,
    OutsideEnglandAndWales,
    UnknownPostcode,
    _source_dir,
    build_index,
    format_location,
    get_locator,
    load_spocs,
    spoc_files,
    spoc_for,
)
from tasks.settings import get_settings

Raw = dict[str, tuple[str | None, float, float]]


@lru_cache(maxsize=32)
def raw_letter(letter: str) -> Raw:
    """The package's file for one first letter read directly: the oracle the index is checked against."""
    path = _source_dir() / f"postcodes_{letter}.msgpack.br"
    data = msgpack.unpackb(brotli.decompress(path.read_bytes()), raw=False)["data"]
    return {
        pcd.replace(" ", ""): (lad if isinstance(lad, str) else None, east, north)
        for pcd, lad, east, north in zip(data["pcd"], data["laua"], data["oseast1m"], data["osnrth1m"], strict=True)
    }


def real_postcode(prefix: str, lad_prefix: str | None = None) -> str:
    """The first real postcode of an outward code ("M8", "EH1"), as 'OUT IN'."""
    for key, (lad, _, _) in sorted(raw_letter(prefix[0]).items()):
        # Compare whole outward codes (all but the last 3 characters): "EH1" must not match EH10.
        if key[:-3] == prefix and (lad_prefix is None or (lad or "").startswith(lad_prefix)):
            return f"{key[:-3]} {key[-3:]}"
    raise AssertionError(f"no postcode {prefix}* in the directory")


@pytest.fixture(scope="session")
def locator() -> Locator:
    return Locator(build_index())


# --- local authorities and PDUs ----------------------------------------------------------------


def test_every_england_and_wales_authority_in_the_directory_maps_to_one_geographic_pdu(locator: Locator) -> None:
    estate = load_estate()
    ew_codes = {code for code in locator.lad_codes if code[:1] in ("E", "W")}
    assert len(ew_codes) == 318
    with (estate_dir() / "local_authority_pdus.csv").open(newline="", encoding="utf-8") as fh:
        rows = Counter(r["lad25cd"] for r in csv.DictReader(fh))
    # The estate loader keeps one row per code; a duplicate in the CSV would be silently dropped.
    assert {code for code, n in rows.items() if n > 1} == set()
    assert set(rows) == ew_codes
    for code in ew_codes:
        pdu = estate.pdus[estate.local_authorities[code].pdu_code]
        assert pdu.geographic, (code, pdu)


def test_every_geographic_pdu_is_reached_by_a_postcode(locator: Locator) -> None:
    estate = load_estate()
    coverage = locator.coverage()
    assert set(coverage) == {p.code for p in estate.geographic_pdus()}
    assert [code for code, n in coverage.items() if n == 0] == []
    # Manchester North and Liverpool North own no whole council: only the district overrides reach them.
    by_default = {la.pdu_code for la in estate.local_authorities.values()}
    assert {"N50MANC", "N51LSF"} - by_default == {"N50MANC", "N51LSF"}
    assert set(coverage) - by_default == {"N50MANC", "N51LSF"}


# --- lookups -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "lad_code", "pdu_code", "region_code"),
    [
        ("M8", "E08000003", "N50MANC", "N50"),  # Manchester, north: override
        ("M20", "E08000003", "N50GMS", "N50"),  # Manchester, south: the council's default
        ("B23", "E08000025", "N52BNES", "N52"),  # Birmingham, Erdington: override
        ("B29", "E08000025", "N52BIRM", "N52"),  # Birmingham, Selly Oak: default
        ("L5", "E08000012", "N51LSF", "N51"),  # Liverpool North: override
        ("CF10", "W06000015", "N03SW1", "N03"),  # Cardiff
        ("TD15", "E06000057", None, None),  # Berwick: English, though TD is mostly Scottish
    ],
)
def test_known_postcodes(locator: Locator, prefix: str, lad_code: str, pdu_code: str | None, region_code: str | None) -> None:
    postcode = real_postcode(prefix, lad_prefix=lad_code)
    loc = locator.locate(postcode)
    raw_lad, east, north = raw_letter(prefix[0])[postcode.replace(" ", "")]
    assert (loc.postcode, loc.lad_code) == (postcode, raw_lad) == (postcode, lad_code)
    assert (loc.easting, loc.northing) == (round(east), round(north))
    estate = load_estate()
    assert loc.lad_name == estate.local_authorities[lad_code].name
    expected_pdu = pdu_code or estate.local_authorities[lad_code].pdu_code
    assert loc.pdu_code == expected_pdu
    assert loc.pdu_name == estate.pdus[expected_pdu].name
    assert loc.region_code == (region_code or estate.pdus[expected_pdu].region_code)
    assert loc.region_name == estate.regions[loc.region_code].name
    assert loc.spoc == spoc_for(expected_pdu).mailbox


def test_override_applies_only_inside_its_council(locator: Locator) -> None:
    # B74 is split between Birmingham (override to N52BNES) and Walsall: the Walsall part keeps Walsall's PDU.
    walsall = real_postcode("B74", lad_prefix="E08000030")
    birmingham = real_postcode("B74", lad_prefix="E08000025")
    assert locator.locate(birmingham).pdu_code == "N52BNES"
    assert locator.locate(walsall).pdu_code == load_estate().local_authorities["E08000030"].pdu_code


@pytest.mark.parametrize("given", ["sw1a1aa", " SW1A  1AA ", "Sw1A 1aA", "SW1A\t1AA", "SW1A 1AA"])
def test_any_case_and_spacing_normalises(locator: Locator, given: str) -> None:
    loc = locator.locate(given)
    assert loc.postcode == "SW1A 1AA"
    assert (loc.lad_code, loc.pdu_code) == ("E09000033", load_estate().local_authorities["E09000033"].pdu_code)


@pytest.mark.parametrize("given", ["", "   ", "12345", "SW1A", "SW1A 1AAA", "SW1A-1AA", "1AA SW1A", "QQQ 1AA", "M8 OAA"])
def test_malformed(locator: Locator, given: str) -> None:
    with pytest.raises(MalformedPostcode) as exc:
        locator.locate(given)
    assert exc.value.exit_code == 2
    assert isinstance(exc.value, LocatorError) and isinstance(exc.value, ValueError)


def test_well_formed_but_nonexistent(locator: Locator) -> None:
    assert "ZZ99ZZ" not in raw_letter("Z")
    with pytest.raises(UnknownPostcode) as exc:
        locator.locate("ZZ9 9ZZ")
    assert exc.value.exit_code == 3
    assert "ZZ9 9ZZ" in str(exc.value)


def test_postcode_without_local_authority_is_unknown(locator: Locator) -> None:
    # The directory lists some non-geographic postcodes with no authority and no grid reference.
    key = next(k for k, (lad, _, _) in sorted(raw_letter("B").items()) if lad is None)
    with pytest.raises(UnknownPostcode, match="no local authority"):
        locator.locate(key)


@pytest.mark.parametrize(
    ("prefix", "lad_prefix", "place"),
    [
        ("EH1", "S", "Scotland"),
        ("BT1", "N", "Northern Ireland"),
        ("JE2", "L99999999", "Channel Islands"),
        ("GY1", "L99999999", "Channel Islands"),
        ("IM1", "M99999999", "Isle of Man"),
    ],
)
def test_outside_england_and_wales(locator: Locator, prefix: str, lad_prefix: str, place: str) -> None:
    postcode = real_postcode(prefix, lad_prefix=lad_prefix)
    with pytest.raises(OutsideEnglandAndWales) as exc:
        locator.locate(postcode)
    assert exc.value.exit_code == 3
    assert "outside the probation service of England and Wales" in str(exc.value)
    assert place in str(exc.value) and postcode in str(exc.value)
    # The route that applies there (config/cross_border.yaml), never "name a PDU instead".
    assert "the inter-jurisdiction transfer process" in str(exc.value) and "receiving_pdu_code" not in str(exc.value)
    assert exc.value.lad_code.startswith(lad_prefix)


def test_distance_km(locator: Locator) -> None:
    london, manchester = "SW1A 1AA", real_postcode("M1")
    km = locator.distance_km(london, manchester)
    # Westminster to central Manchester is about 262 km as the crow flies.
    assert km is not None and 250 < km < 275
    assert locator.distance_km(manchester, london) == km
    assert locator.distance_km(london, "sw1a1aa") == 0
    near = locator.distance_km(real_postcode("M8"), manchester)
    assert near is not None and near < 10
    # Edinburgh is outside England and Wales but on the same grid: the distance is still meaningful.
    edinburgh = locator.distance_km(london, real_postcode("EH1"))
    assert edinburgh is not None and 520 < edinburgh < 560


def test_distance_km_is_none_without_a_comparable_grid_reference(locator: Locator) -> None:
    assert locator.distance_km("SW1A 1AA", real_postcode("JE2")) is None
    # Belfast's reference is on the Irish Grid.
    assert locator.distance_km("SW1A 1AA", real_postcode("BT1")) is None
    belfast = real_postcode("BT1")
    assert locator.distance_km(belfast, belfast) == 0
    with pytest.raises(UnknownPostcode):
        locator.distance_km("SW1A 1AA", "ZZ9 9ZZ")


def test_locate_many_agrees_with_locate(locator: Locator) -> None:
    given = [
        "m80aa",
        real_postcode("M8"),
        real_postcode("B23"),
        real_postcode("L5"),
        " sw1a  1aa",
        real_postcode("CF10"),
        "ZZ9 9ZZ",
        "not a postcode",
        real_postcode("EH1"),
        real_postcode("IM1"),
        real_postcode("JE2"),
    ]
    many = locator.locate_many(given)
    assert len(many) == len(given)
    for i, value in enumerate(given):
        try:
            loc = locator.locate(value)
        except MalformedPostcode:
            assert many.status[i] == "malformed" and many.pdu_code[i] == ""
            continue
        except OutsideEnglandAndWales as exc:
            assert (many.status[i], many.lad_code[i], many.pdu_code[i]) == ("outside", exc.lad_code, "")
            continue
        except UnknownPostcode:
            assert many.status[i] == "unknown"
            continue
        assert many.status[i] == "ok"
        assert (many.postcode[i], many.lad_code[i], many.pdu_code[i], many.region_code[i]) == (
            loc.postcode,
            loc.lad_code,
            loc.pdu_code,
            loc.region_code,
        )
        assert (many.easting[i], many.northing[i]) == (loc.easting, loc.northing)
    frame = many.to_frame()
    assert list(frame.columns) == ["postcode", "status", "lad_code", "pdu_code", "region_code", "easting", "northing"]
    assert math.isnan(frame.loc[len(given) - 1, "easting"])


def test_locate_many_on_a_large_sample_matches_the_directory(locator: Locator) -> None:
    raw = raw_letter("S")
    keys = sorted(raw)[::97]
    many = locator.locate_many(keys)
    expected = np.array([raw[k][0] or "" for k in keys])
    ok = many.status == "ok"
    assert ok.sum() > 0.9 * len(keys)
    assert (many.lad_code[ok] == expected[ok]).all()
    assert set(many.status[~ok]) <= {"unknown", "outside"}


def test_as_dict_and_format_location(locator: Locator) -> None:
    loc = locator.locate(real_postcode("M8"))
    assert isinstance(loc, Location)
    assert list(loc.as_dict()) == [
        "postcode",
        "lad_code",
        "lad_name",
        "pdu_code",
        "pdu_name",
        "region_code",
        "region_name",
        "spoc",
    ]
    text = format_location(loc)
    for part in (loc.postcode, loc.lad_code, "Manchester", "N50MANC", "Manchester North", "N50", "Greater Manchester", loc.spoc):
        assert part in text
    assert "EXAMPLE" in text


def test_get_locator_is_cached_and_uses_the_settings_index() -> None:
    first = get_locator()
    assert first is get_locator()
    assert first.index_dir == get_settings().data_dir / "postcode-index"
    assert first.locate("SW1A 1AA").lad_code == "E09000033"


def test_index_is_memory_mapped_not_loaded(locator: Locator) -> None:
    # Lookups must not pull 2.7M postcodes into Python objects: the arrays stay backed by the files.
    for array in (locator._keys, locator._lad, locator._east, locator._north):
        assert not array.flags.owndata
        assert len(array) == locator.meta["rows"] > 2_700_000


# --- SPOCs -------------------------------------------------------------------------------------


def test_every_geographic_pdu_has_an_example_spoc() -> None:
    estate = load_estate()
    spocs = load_spocs([get_settings().config_dir / "spocs.yaml"], estate)
    assert set(spocs) == {p.code for p in estate.geographic_pdus()}
    assert len(spocs) == 108
    for code, spoc in spocs.items():
        assert spoc.pdu_code == code
        assert spoc.mailbox == f"transfers.{code.lower()}@example.probation.gov.uk"
        assert spoc.role == "SPO (example)" and spoc.example


def test_a_region_overrides_its_spocs(tmp_path: Path) -> None:
    config, data = tmp_path / "config", tmp_path / "data"
    (config / "spocs.d").mkdir(parents=True)
    (data / "spocs.d").mkdir(parents=True)
    (config / "spocs.yaml").write_text((get_settings().config_dir / "spocs.yaml").read_text())
    (config / "spocs.d" / "N50.yaml").write_text(
        "spocs:\n  N50MANC:\n    mailbox: mn.transfers@region.test\n    role: SPO, Manchester North\n"
        "  N50GMS:\n    mailbox: ms.transfers@region.test\n"
    )
    (data / "spocs.d" / "local.yaml").write_text(
        "spocs:\n  N50GMS:\n    mailbox: local.ms@region.test\n    role: Transfers hub\n"
    )
    files = spoc_files(config, data)
    assert files == [config / "spocs.yaml", config / "spocs.d" / "N50.yaml", data / "spocs.d" / "local.yaml"]
    spocs = load_spocs(files)
    assert (spocs["N50MANC"].mailbox, spocs["N50MANC"].role, spocs["N50MANC"].example) == (
        "mn.transfers@region.test",
        "SPO, Manchester North",
        False,
    )
    assert (spocs["N50GMS"].mailbox, spocs["N50GMS"].role) == ("local.ms@region.test", "Transfers hub")
    assert spocs["N53DRBY"].example and len(spocs) == 108


@pytest.mark.parametrize(
    "body",
    [
        "spocs:\n  N50XXXX:\n    mailbox: a@b.test\n",  # not a PDU
        "spocs:\n  N50UPAC:\n    mailbox: a@b.test\n",  # functional PDU
        "spocs:\n  N50MANC:\n    role: SPO\n",  # no mailbox
        "spocs:\n  N50MANC:\n    mailbox: not-an-address\n",
    ],
)
def test_a_bad_region_override_is_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match="bad.yaml"):
        load_spocs([get_settings().config_dir / "spocs.yaml", path])


def test_spoc_for_unknown_pdu() -> None:
    assert spoc_for("N50MANC").mailbox == "transfers.n50manc@example.probation.gov.uk"
    with pytest.raises(LocatorError):
        spoc_for("N50UPAC")

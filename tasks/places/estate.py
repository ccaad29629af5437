"""The probation estate (regions, PDUs, teams, local authority → PDU) from config/estate/<version>/."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.config_files import read_csv
from tasks.settings import get_settings


@dataclass(frozen=True)
class Region:
    code: str
    name: str


@dataclass(frozen=True)
class Pdu:
    code: str
    name: str
    region_code: str
    geographic: bool


@dataclass(frozen=True)
class Team:
    code: str
    name: str
    pdu_code: str
    region_code: str


@dataclass(frozen=True)
class LocalAuthority:
    code: str
    name: str
    pdu_code: str
    confidence: str


# Functional PDUs (unpaid work, public protection, ...) are never a transfer's destination.
FUNCTIONAL_SUFFIXES = ("UPAC", "PPC")
FUNCTIONAL_CODES = {"N52BCCF", "N52USRO", "N58PDP"}


@dataclass(frozen=True)
class Estate:
    version: str
    regions: dict[str, Region]
    pdus: dict[str, Pdu]
    teams: dict[str, Team]
    local_authorities: dict[str, LocalAuthority]
    # (postcode district, lad code) -> pdu code, for districts split between PDUs
    district_overrides: dict[tuple[str, str], str]

    def region_of_pdu(self, pdu_code: str) -> Region:
        return self.regions[self.pdus[pdu_code].region_code]

    def geographic_pdus(self) -> list[Pdu]:
        return [p for p in self.pdus.values() if p.geographic]


def _rows(path: Path) -> list[dict[str, str]]:
    return read_csv(path)


def estate_dir(version: str | None = None) -> Path:
    settings = get_settings()
    return settings.config_dir / "estate" / (version or settings.estate_version)


@lru_cache(maxsize=4)
def load_estate(version: str | None = None) -> Estate:
    folder = estate_dir(version)
    if not folder.is_dir():
        raise ValueError(f"estate_version: no estate data in {folder}")
    regions = {r["region_code"]: Region(r["region_code"], r["region_name"]) for r in _rows(folder / "regions.csv")}
    pdus = {
        r["pdu_code"]: Pdu(
            r["pdu_code"],
            r["pdu_name"],
            r["region_code"],
            geographic=not (r["pdu_code"].endswith(FUNCTIONAL_SUFFIXES) or r["pdu_code"] in FUNCTIONAL_CODES),
        )
        for r in _rows(folder / "pdus.csv")
        if r["soft_deleted"] != "t"
    }
    teams = {
        r["team_code"]: Team(r["team_code"], r["team_name"], r["pdu_code"], r["region_code"])
        for r in _rows(folder / "teams.csv")
        if r["soft_deleted"] != "t"
    }
    las = {
        r["lad25cd"]: LocalAuthority(r["lad25cd"], r["lad_name"], r["pdu_code"], r["confidence"])
        for r in _rows(folder / "local_authority_pdus.csv")
    }
    overrides = {(r["postcode_district"], r["lad25cd"]): r["pdu_code"] for r in _rows(folder / "postcode_district_overrides.csv")}
    return Estate(version or get_settings().estate_version, regions, pdus, teams, las, overrides)

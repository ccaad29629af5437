"""Restrictive conditions as data (issue 26): exclusion zones, non-contact conditions and curfews
as the transfer form gives them. Only their shape and what each area names lives here; whether a
proposed address sits inside a zone is tasks/domain/conditions.py's.

An exclusion zone is a postcode district ("M8"), a postcode sector ("M8 8"), or a named area the
locator knows: a local authority (its name or its code) or a PDU (its name or its code).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.places.estate import load_estate

DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
SECTOR = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9])$")
ZoneKind = Literal["district", "sector", "local_authority", "pdu"]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().upper()


def resolve_area(area: str) -> tuple[ZoneKind, str]:
    """(kind, key) of an area as written: a district or sector in its usual spelling ("M8",
    "M8 8"), a local authority's or PDU's code. ValueError names what an area may be."""
    text = _squash(area)
    if DISTRICT.match(text):
        return "district", text
    if m := SECTOR.match(text):
        return "sector", f"{m.group(1)} {m.group(2)}"
    estate = load_estate()
    for la in estate.local_authorities.values():
        if text in (la.code.upper(), _squash(la.name)):
            return "local_authority", la.code
    for pdu in estate.pdus.values():
        if text in (pdu.code.upper(), _squash(pdu.name)):
            return "pdu", pdu.code
    raise ValueError(
        f"{area!r} is not a postcode district (like 'M8'), a postcode sector (like 'M8 8'), "
        "nor a local authority or PDU the locator knows (its name or code)"
    )


class ExclusionZone(BaseModel):
    """An area the person must not enter. `kind` and `key` are worked out from `area`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    area: str = Field(..., min_length=1, max_length=100, description="Postcode district (M8), sector (M8 8), or a local authority or PDU")
    note: str = Field("", max_length=500, description="What the zone protects, as the licence words it")
    kind: ZoneKind | None = Field(None, description="Worked out from the area: district, sector, local_authority or pdu")
    key: str | None = Field(None, description="Worked out from the area: the district, sector or code matched against the address")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"area": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _resolved(self) -> ExclusionZone:
        self.kind, self.key = resolve_area(self.area)
        if self.kind in ("district", "sector"):
            self.area = self.key  # written as the Royal Mail writes it
        return self

    def words(self) -> str:
        return f"{self.area}" + (f" ({self.note})" if self.note else "")


class NonContact(BaseModel):
    """Someone the person must not contact, as the licence or order describes them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    with_whom: str = Field(..., min_length=1, max_length=200, description="Who, as the condition describes them")
    note: str = Field("", max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"with_whom": data} if isinstance(data, str) else data


class Curfew(BaseModel):
    """A curfew at the address: the hours, and whether it is electronically monitored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    start: dt.time = Field(..., description="From (HH:MM)")
    end: dt.time = Field(..., description="Until (HH:MM), the next morning when earlier than start")
    electronically_monitored: bool = False
    note: str = Field("", max_length=500)

    def words(self) -> str:
        tag = ", electronically monitored" if self.electronically_monitored else ""
        return f"curfew {self.start:%H:%M}-{self.end:%H:%M}{tag}"

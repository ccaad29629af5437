"""Cross-border: where a case goes when the address is outside England and Wales, and whether a
receiving PDU named on the form may take it (issue 25, item 6).

The Probation Service of England and Wales has no PDU in Scotland, Northern Ireland, the Channel
Islands or the Isle of Man: a move there goes through the inter-jurisdiction transfer process,
named per jurisdiction in config/cross_border.yaml. So such an address is refused with that route,
never with "name a PDU instead"; and a PDU named for it is refused too. Where the locator places
the postcode in a PDU of England and Wales, naming another PDU needs a reason (the history keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.config_files import read_yaml
from tasks.settings import get_settings

REASON_FIELD = "receiving_pdu_reason"


@dataclass(frozen=True)
class Route:
    """The route for a move to a place outside England and Wales."""

    place: str  # as the locator names it ("Scotland", "the Isle of Man")
    process: str  # the inter-jurisdiction transfer process
    service: str  # who supervises there
    read: str  # where to read about it

    def words(self) -> str:
        return f"a move there is made through {self.process} with {self.service}, not by a case transfer to a PDU; read: {self.read}"


def route_for(place: str, config_dir: Path | None = None) -> Route:
    """The route config/cross_border.yaml gives for `place`; its general process where the place is not listed."""
    cfg = read_yaml((config_dir or get_settings().config_dir) / "cross_border.yaml") or {}
    process = str(cfg.get("process") or "the inter-jurisdiction transfer process")
    entry = (cfg.get("jurisdictions") or {}).get(place) or {}
    return Route(
        place=str(entry.get("name") or place),
        process=process,
        service=str(entry.get("service") or "the service that supervises people there"),
        read=str(entry.get("read") or "the transferring PDU's SPO"),
    )


def named_pdu_problem(named: str, located: str | None, reason: str | None, located_name: str = "") -> tuple[str, str] | None:
    """(field, rule) when a receiving PDU named on the form may not stand: the locator places the
    proposed postcode in another PDU and no reason is given. None when it may (same PDU, a reason,
    or a postcode the locator cannot place)."""
    if located is None or located == named or (reason or "").strip():
        return None
    where = f"{located_name} ({located})" if located_name else located
    return (
        REASON_FIELD,
        f"the locator places the proposed postcode in {where}, not {named}: give the reason the case goes to "
        f"{named} in {REASON_FIELD}, or leave receiving_pdu_code empty for the locator to decide",
    )


def named_pdu_detail(named: str, located: str | None, reason: str | None) -> str:
    """The history's words for a named PDU that differs from the locator's, with its reason; empty otherwise."""
    if located is None or located == named or not (reason or "").strip():
        return ""
    return f"; receiving PDU {named} named on the form, where the locator places the postcode in {located}: {(reason or '').strip()}"

"""`casetransfer amend`, `stop-clock` and `restart-clock`: a transfer that changes after it is
raised (tasks/domain/changes.py has the rules; services.change drives the runs and the notices)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ops.console import fail


def _day(value: str | None, field: str) -> dt.date | None:
    """A date inside the window of a transfer's days (config/limits.yaml), or None when not given."""
    from ops import boundary

    return None if value is None else boundary.day(value, f"--{field}")


@contextmanager
def _refusals(reference: str) -> Iterator[None]:
    """A refused change exits 2 naming the field, an unknown NSI 3; nothing is stored either way."""
    from tasks.domain import transfers
    from tasks.domain.decisions import RuleBroken
    from tasks.domain.form import FormError

    try:
        yield
    except (RuleBroken, transfers.StepRefused, FormError) as exc:
        fail(str(exc))
    except transfers.NotFound as exc:
        fail(str(exc), 3)


def _yes_no(value: str | None, field: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("yes", "true", "y"):
        return True
    if value.lower() in ("no", "false", "n"):
        return False
    fail(f"{field}: {value!r} is not yes or no")


def amend(
    reference: str,
    reason: str = typer.Option(..., "--reason", help="Why it changed (kept in the history)"),
    postcode: str | None = typer.Option(None, "--postcode", help="Destination: the new proposed postcode"),
    address: str | None = typer.Option(None, "--address", help="Destination: the new proposed address"),
    pdu: str | None = typer.Option(None, "--pdu", help="Destination: name the receiving PDU (checked against the postcode)"),
    move_date: str | None = typer.Option(None, "--move-date", help="Dates: the new move (or release) date"),
    expected_return: str | None = typer.Option(None, "--expected-return", help="Dates: a temporary move's expected return"),
    rosh: str | None = typer.Option(None, "--rosh", help="Risk: Low, Medium, High or Very High"),
    saw: str | None = typer.Option(None, "--saw", help="Risk (youth justice): the Safety and Wellbeing level, as --rosh"),
    mappa_category: int | None = typer.Option(None, "--mappa-category", min=1, max=3),
    mappa_level: int | None = typer.Option(None, "--mappa-level", min=1, max=3),
    no_mappa: bool = typer.Option(False, "--no-mappa", help="Risk: no longer managed under MAPPA"),
    safeguarding: str | None = typer.Option(None, "--safeguarding", help="Risk: safeguarding or child protection flags, yes|no"),
    victim_contact: str | None = typer.Option(None, "--victim-contact", help="Risk: victim contact scheme involved, yes|no"),
    on: str | None = typer.Option(None, "--on", help="The day it changed (default today); new deadlines count from it"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Change an open transfer: its destination, its dates or its risk. What was done stays done;
    what depends on the change is planned again, and the other side is told."""
    import services
    from ops import actor, boundary
    from tasks.domain.changes import amendment

    reason = boundary.text(reason, "--reason") or ""
    with _refusals(reference):
        what, fields = amendment(
            postcode=postcode, address=address, pdu=pdu,
            move_date=_day(move_date, "move-date"), expected_return=_day(expected_return, "expected-return"),
            rosh=_rosh(rosh) if rosh else None, saw_level=_rosh(saw, "saw") if saw else None, mappa_category=mappa_category, mappa_level=mappa_level, no_mappa=no_mappa,
            safeguarding=_yes_no(safeguarding, "safeguarding"), victim_contact=_yes_no(victim_contact, "victim-contact"),
            on=_day(on, "on"),
        )  # fmt: skip
        detail = services.change(reference, what, actor.name(boundary.text(by, "--by") or None, reference, "amend"), reason, **fields)
    print(f"{reference.strip().upper()}: amended: {detail}")


def _rosh(value: str, field: str = "rosh") -> str:
    from tasks.domain.form import Rosh

    for level in Rosh:
        if value.strip().lower() in (level.value.lower(), level.name):
            return level.value
    fail(f"{field}: {value!r} is not one of {', '.join(r.value for r in Rosh)}")


def stop_clock(
    reference: str,
    reason: str = typer.Option(..., "--reason", help="custody, recall, remand, hospital or other"),
    since: str = typer.Option(..., "--from", help="The day supervision stopped (YYYY-MM-DD)"),
    note: str = typer.Option("", "--note", help="What happened (kept in the history)"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Stop a transfer's clocks while the person cannot be supervised: nothing is reminded or
    escalated until `restart-clock`, which moves every open deadline on by the days stopped."""
    import services
    from ops import actor, boundary

    day = _day(since, "from")
    note = boundary.text(note, "--note") or ""
    with _refusals(reference):
        detail = services.change(reference, "stop_clock", actor.name(boundary.text(by, "--by") or None, reference, "stop-clock"), None, kind=reason, since=day, note=note)
    print(f"{reference.strip().upper()}: {detail}")


def restart_clock(
    reference: str,
    on: str = typer.Option(..., "--on", help="The day supervision resumed (YYYY-MM-DD)"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Restart a stopped transfer's clocks: every open deadline moves on by the working days stopped."""
    import services
    from ops import actor, boundary

    day = _day(on, "on")
    with _refusals(reference):
        detail = services.change(reference, "restart_clock", actor.name(boundary.text(by, "--by") or None, reference, "restart-clock"), None, on=day)
    print(f"{reference.strip().upper()}: {detail}")

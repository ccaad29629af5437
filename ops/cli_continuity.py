"""`casetransfer absence` and `contact`: continuity of supervision while a case moves
(tasks/domain/continuity.py has the rules; services.absence wakes the transfer's run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from ops.cli_changes import _day, _refusals, _yes_no
from ops.console import fail


def absence(
    reference: str,
    on: str = typer.Option(..., "--on", help="The day of the missed appointment (YYYY-MM-DD)"),
    acceptable: str = typer.Option(..., "--acceptable", help="Was the absence acceptable? yes|no"),
    role: str = typer.Option("receiving_pp", "--role", help="Who records it: transferring_pp, receiving_pp or admin"),
    notes: str = typer.Option("", "--notes", help="What happened (kept with the record of absences)"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """A missed appointment before completion, from either side: it joins the record of absences
    handed over and, when unacceptable, goes to the transferring practitioner's tasks (who owns
    enforcement until completion)."""
    import services
    from ops import actor, boundary

    day = _day(on, "on")
    ok = _yes_no(acceptable, "acceptable")
    if ok is None:  # pragma: no cover - typer requires the option
        fail("acceptable: say yes or no")
    notes = boundary.text(notes, "--notes") or ""
    with _refusals(reference):
        detail = services.absence(reference, day, bool(ok), actor.name(boundary.text(by, "--by") or None, reference, "absence"), role, notes)
    print(f"{reference.strip().upper()}: {detail}")


def contact(
    reference: str,
    on: str = typer.Option(..., "--on", help="The day of the contact (YYYY-MM-DD)"),
    role: str = typer.Option("receiving_pp", "--role", help="Who records it: the host's receiving_pp or admin"),
    notes: str = typer.Option("", "--notes", help="What the supervising practitioner should know"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """A Temporary Move's host records a contact; the supervising practitioner sees it in status."""
    from ops import actor, boundary
    from tasks.domain import transfers

    day = _day(on, "on")
    notes = boundary.text(notes, "--notes") or ""
    with _refusals(reference):
        recorded = transfers.record_contact(reference, day, actor.name(boundary.text(by, "--by") or None, reference, "contact"), role, notes)
    print(f"{reference.strip().upper()}: {recorded.detail}")


def print_continuity(out: Any, view: Any, visible: Callable[[str], Any]) -> None:
    """status: the restrictive conditions, the exclusion zone flags, and the record of absences
    (and a temporary move's contacts) handed over. Every stored value goes through visible()."""
    if view.lao and view.conditions:
        # Who must not be contacted, and where, could name or place people: the case record holds them.
        out.print(f"restrictive conditions: {len(view.conditions)} recorded (restricted: see the case record)", highlight=False)
    else:
        for line in view.conditions:
            out.print(visible(f"condition: {line}"), highlight=False)
    for flag in view.flags:
        out.print(visible("FLAG: the proposed address is inside an exclusion zone" if view.lao else f"FLAG: {flag}"), style="bold",
                  highlight=False)  # fmt: skip
    if view.contacts:
        from rich.table import Table

        title = "Contacts and absences" if view.nsi_type == "temporary_move" else "Record of absences"
        table = Table("on", "what", "recorded by", "notes", title=title, title_justify="left")
        for c in view.contacts:
            if c["kind"] == "absence":
                what = ("first appointment missed" if c["first_appointment"] else "absence") + (
                    ": acceptable" if c["acceptable"] else ": unacceptable"
                )
            else:
                what = "contact"
            notes = "restricted (LAO)" if view.lao and c["notes"] else c["notes"]
            table.add_row(str(c["on"]), what, visible(f"{c['recorded_by']} ({c['role'].replace('_', ' ')})"), visible(notes))
        out.print(table)


def register(app: typer.Typer) -> None:
    app.command("absence")(absence)
    app.command("contact")(contact)

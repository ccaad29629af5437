"""`casetransfer status`, `grant` and `access-log`: an NSI's details as the person looking may
see them (issue 28: a limited access case whole only for its access list, every look logged),
who may see a limited access case, and who looked and who changed what."""

from __future__ import annotations

import json
import sys

import typer

from ops.console import fail, out, visible


def status(
    reference: str,
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
    as_: str | None = typer.Option(None, "--as", help="Look as this sign-in (not in the production profile: you are who you are)"),
) -> None:
    """Status, the Action List with due dates and overdue marks, and the history. A limited access
    (LAO) case is shown whole only to the staff on its access list; each look is logged."""
    from rich.table import Table
    from rich.text import Text

    from ops import actor
    from tasks.domain import access_log, transfers

    people, viewer = actor.viewer(as_)
    try:
        view, seen = access_log.look(reference, viewer, people)
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    if not seen.allowed:
        print(f"note: {seen.reason}", file=sys.stderr)
    if as_json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(view), default=str, indent=2))
        return
    # Every stored value goes through visible(): shown exactly as stored, never read as markup.
    who = f"{view.name} ({view.crn})"  # an LAO case's name is its restricted words for anyone not on its list
    out.print(Text.assemble((view.reference, "bold"), f" {view.nsi_type.replace('_', ' ')}: ", visible(who)), highlight=False)
    out.print(f"status: {view.status}   raised {view.raised_on}   due {view.due_on}", highlight=False)
    if view.clock_stopped:
        out.print(f"[bold]{view.clock_stopped}[/]: nothing is reminded or escalated until `casetransfer restart-clock`", highlight=False)
    out.print(visible(f"from {view.transferring} to {view.receiving}"), highlight=False)
    if view.nsi_type == "temporary_move":
        # A temporary move never moves management: say who is responsible and who supports.
        out.print(visible(f"responsible practitioner: {view.responsible_officer} (transferring)"), highlight=False)
        if view.receiving_practitioner:
            out.print(visible(f"support contact: {view.receiving_practitioner} (receiving)"), highlight=False)
    else:
        if view.receiving_practitioner:
            out.print(visible(f"receiving practitioner: {view.receiving_practitioner}"), highlight=False)
        if view.responsible_officer:
            out.print(visible(f"responsible officer: {view.responsible_officer}"), highlight=False)
    for note in view.notes:
        out.print(visible(f"note: {note}"), highlight=False)
    out.print(f"profile: {view.profile}", highlight=False)
    if view.parent_reference:
        out.print(f"converted from Temporary Move {view.parent_reference}", highlight=False)
    if view.converted_to:
        out.print(f"converted to Case Transfer {view.converted_to}", highlight=False)
    for words, ref in (("supersedes", view.supersedes), ("superseded by", view.superseded_by)):
        if ref:
            out.print(f"{words} {ref}", highlight=False)
    if view.repeat_mover:
        out.print(f"[bold]repeat mover[/]: {view.repeat_mover} transfers raised ({view.repeat_mover_rule})", highlight=False)
    if view.tasks:
        from tasks.settings import get_settings

        ui = get_settings().ui_url.rstrip("/")
        tasks = Table("task", "waiting for", "due", "record with", "Prefect UI", title="Open tasks", title_justify="left")
        for t in view.tasks:
            link = f"{ui}/runs/flow-run/{t.flow_run_id}" if t.flow_run_id else "(starting)"
            due = t.due_on.isoformat() if t.due_on else ""
            tasks.add_row(visible(t.title), visible(t.owner_role.replace("_", " ")), due, f"record {view.reference} {t.task}", link)
        out.print(tasks)
    for c in view.challenges:
        settled = f", settled {c.settled_on}" if c.settled_on else ""
        dispute = f"; dispute {c.dispute_status}" if c.dispute_status else ""
        out.print(visible(f"challenge {c.seq} about risk: {c.status} (raised {c.raised_on} by {c.raised_by}{settled}){dispute}"),
                  highlight=False)  # fmt: skip
    from ops.cli_continuity import print_continuity; print_continuity(out, view, visible)  # noqa: E702, I001 - conditions, absences
    actions = Table("action", "owner", "due", "status", "overdue", title="Actions", title_justify="left")
    for a in view.actions:
        overdue = f"[red]OVERDUE {a.days_overdue} wd[/]" if a.days_overdue > 0 else ""
        done = ("no longer required" if a.status == "not_required" else a.status) + (f" {a.done_on}" if a.done_on else "")
        actions.add_row(visible(a.title), visible(a.owner_role), a.due_on.isoformat(), done, overdue)
    out.print(actions)
    history = Table("when", "event", "detail", "by", title="History", title_justify="left")
    for h in [*view.earlier_history, *view.history]:  # an earlier NSI's lines (moving again) say whose they are
        event = f"{h.reference}: {h.event}" if h.reference else h.event
        history.add_row(h.at.strftime("%Y-%m-%d %H:%M"), visible(event), visible(h.detail), visible(h.actor))
    out.print(history)


def grant(
    reference: str,
    staff: str = typer.Option(..., "--staff", help="The sign-in of the person to add (config/staff/people.yaml)"),
    reason: str = typer.Option(..., "--reason", help="Why they need to see it (kept in the history)"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Add a person to a limited access (LAO) case's access list: they see it whole in `status`.
    The history records who granted it and why."""
    from ops import actor, boundary
    from tasks.domain import access_log, transfers
    from tasks.domain.decisions import RuleBroken

    reason = boundary.text(reason, "--reason") or ""
    who = actor.name(boundary.text(by, "--by") or None, reference, command="grant")
    try:
        print(access_log.grant(reference, staff, reason, who, actor.staff()))
    except RuleBroken as exc:
        fail(f"Nothing was granted.\n{'--' if exc.field in ('staff', 'reason') else ''}{exc}")
    except transfers.NotFound as exc:
        fail(str(exc), 3)


def show_access_log(reference: str) -> None:
    """Who looked at an NSI's details (allowed or refused) and who changed what, oldest first."""
    from rich.table import Table

    from ops import actor
    from tasks.domain import access_log, transfers

    if actor.from_os_account():
        actor.signed_in()
    try:
        lines = access_log.access_entries(reference)
        listed = access_log.access_list(reference, actor.staff())
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    table = Table("when", "what", "who", "why", title=f"Access log of {reference.strip().upper()}", title_justify="left")
    for line in lines:
        table.add_row(line.at.strftime("%Y-%m-%d %H:%M:%S"), visible(f"{line.kind}: {line.what}"), visible(line.actor), visible(line.detail))
    out.print(table)
    if listed and access_log.parties_of(reference).lao:
        out.print(visible("access list: " + "; ".join(f"{p.name} ({p.signin}, {why})" for p, why in listed)), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("grant")(grant)
    app.command("access-log")(show_access_log)

"""Limited access in the store (issue 28, items 5 and 6): an LAO NSI's access list (the default
from tasks/domain/lao_access.py and the grants here), a status look that is logged whether it
was allowed or refused, and the access log read back with the history's changes beside it.
Each write is one transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tasks.domain import lao_access
from tasks.domain import steps as registry
from tasks.domain.decisions import RuleBroken, check_reason
from tasks.domain.form import FormError
from tasks.domain.policy import get_policy
from tasks.domain.staff import Decision, StaffList, StaffMember
from tasks.domain.transfer import Transfers
from tasks.domain.transfer_views import StatusView, status_of
from tasks.store.models import AccessLogEntry, HistoryEntry, LaoGrant, Nsi
from tasks.store.unit_of_work import UnitOfWork

GRANTED = "lao_granted"


def _nsi(session: Session, reference: str) -> Nsi:
    return Transfers(session).get(reference).nsi


def _parties(nsi: Nsi) -> lao_access.Parties:
    fields = lao_access.command_rules().lao.named
    return lao_access.Parties(
        nsi.reference, bool(nsi.lao), nsi.transferring_pdu_code, nsi.receiving_pdu_code, {f: getattr(nsi, f, None) for f in fields}
    )


def parties_of(reference: str, url: str | None = None) -> lao_access.Parties:
    """The NSI's sides' PDUs and the staff it names (NotFound for an unknown reference)."""
    with UnitOfWork(url) as uow:
        return _parties(_nsi(uow.session, reference))


def owner_of(reference: str, code: str, url: str | None = None) -> str | None:
    """Who a waiting task or an action of this NSI belongs to (config/timescales.yaml), or None
    when the NSI has neither by that name."""
    with UnitOfWork(url) as uow:
        nsi = _nsi(uow.session, reference)
        try:
            return registry.owner_of(code, get_policy(nsi.profile))
        except FormError:
            return next((a.owner_role for a in nsi.actions if a.code == code), None)


def access_list(reference: str, staff: StaffList, url: str | None = None) -> list[tuple[StaffMember, str]]:
    """Who may see the NSI whole, each with why: (person, "default" or the grant's reason)."""
    with UnitOfWork(url) as uow:
        nsi = _nsi(uow.session, reference)
        listed = [(p, "default") for p in lao_access.default_list(_parties(nsi), staff)]
        for g in nsi.lao_grants:
            person = staff.by_signin(g.signin)
            if person is not None and all(p.signin != person.signin for p, _ in listed):
                listed.append((person, f"granted by {g.granted_by}: {g.reason}"))
        return listed


def grant(reference: str, signin: str, reason: str, by: str, staff: StaffList, url: str | None = None) -> str:
    """Add a person to an LAO NSI's access list, with the history entry saying who and why, in one
    transaction. Refused, naming the field, for someone not on the staff list or an NSI that is
    not limited access; a person already on the list is told so and nothing is stored."""
    reason, by = check_reason("reason", reason), check_reason("by", by)
    person = staff.by_signin(signin or "")
    if person is None:
        raise RuleBroken("staff", f"no one on the staff list signs in as {signin!r} (config/staff/people.yaml)")
    with UnitOfWork(url) as uow:
        nsi = _nsi(uow.session, reference)
        parties = _parties(nsi)
        if not nsi.lao:
            raise RuleBroken("reference", f"{nsi.reference} is not a limited access case: it has no access list")
        granted = [g.signin for g in nsi.lao_grants]
        already = lao_access.may_see(person, parties, granted, staff)
        if already.allowed:
            return f"{nsi.reference}: {person.name} may already see it ({already.reason})"
        nsi.lao_grants.append(LaoGrant(signin=person.signin, staff_name=person.name, reason=reason, granted_by=by))
        uow.session.add(
            HistoryEntry(
                nsi_id=nsi.id, key=f"lao_grant:{person.signin.lower()}", event=GRANTED,
                detail=f"{person.name} ({person.signin}) may see this limited access case: {reason}", actor=by,
            )
        )  # fmt: skip
        uow.commit()
        return f"{nsi.reference}: {person.name} may now see it"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the staff member (None when nobody on the staff list), the name the log
    keeps, and the operating-system account when it was read from one."""

    person: StaffMember | None
    actor: str
    os_account: str | None = None


def look(reference: str, viewer: Viewer, staff: StaffList, url: str | None = None) -> tuple[StatusView, Decision]:
    """The NSI's status as this viewer may see it (whole, or restricted for an LAO case they are
    not on the list of), and the look written to the access log, allowed or refused."""
    view = status_of(reference, url=url)
    with UnitOfWork(url) as uow:
        nsi = _nsi(uow.session, reference)
        decision = lao_access.may_see(viewer.person, _parties(nsi), [g.signin for g in nsi.lao_grants], staff)
        nsi.access_log.append(
            AccessLogEntry(
                surface="status", allowed=decision.allowed, actor=viewer.actor[:200], reason=decision.reason,
                signin=viewer.person.signin if viewer.person else None, os_account=viewer.os_account,
            )
        )  # fmt: skip
        uow.commit()
    return (view if decision.allowed else lao_access.restricted(view)), decision


def seen_whole_by(person: StaffMember, staff: StaffList, url: str | None = None) -> list[int]:
    """The limited access NSIs (ids) this person is on the access list of: their own copy of the
    tracker shows these whole."""
    with UnitOfWork(url) as uow:
        nsis = uow.session.scalars(select(Nsi).where(Nsi.lao.is_(True))).all()
        return [
            n.id for n in nsis if lao_access.may_see(person, _parties(n), [g.signin for g in n.lao_grants], staff).allowed
        ]


def log_tracker_rows(viewer: Viewer, shown: dict[int, bool], url: str | None = None) -> None:
    """The limited access rows a person's own copy of the tracker held: whole (allowed) or
    restricted (refused), one log entry each, in one transaction."""
    with UnitOfWork(url) as uow:
        for nsi_id, allowed in shown.items():
            uow.session.add(
                AccessLogEntry(
                    nsi_id=nsi_id, surface="tracker", allowed=allowed, actor=viewer.actor[:200], os_account=viewer.os_account,
                    signin=viewer.person.signin if viewer.person else None,
                    reason="a row of their own copy of the tracker, " + ("whole" if allowed else "restricted"),
                )
            )  # fmt: skip
        uow.commit()


@dataclass(frozen=True)
class LogLine:
    at: dt.datetime
    kind: str  # "look" (status, allowed or refused) or "change" (a history entry)
    what: str
    actor: str
    detail: str


def access_entries(reference: str, url: str | None = None) -> list[LogLine]:
    """Who read the NSI's details and who changed what, oldest first: the looks from the access
    log, the changes from the history (its actor, as recorded)."""
    with UnitOfWork(url) as uow:
        nsi = _nsi(uow.session, reference)
        looks = uow.session.scalars(select(AccessLogEntry).where(AccessLogEntry.nsi_id == nsi.id).order_by(AccessLogEntry.id))
        lines = [
            LogLine(_aware(e.at), "look", f"{e.surface} {'allowed' if e.allowed else 'refused'}",
                    e.actor + (f" ({e.os_account})" if e.os_account else ""), e.reason)
            for e in looks
        ]  # fmt: skip
        lines += [LogLine(_aware(h.at), "change", h.event, h.actor, "") for h in nsi.history]
        return sorted(lines, key=lambda line: line.at)


def _aware(at: dt.datetime) -> dt.datetime:
    # SQLite gives the stored UTC time back without its zone.
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

"""Moving again (issue 25, item 3): one open transfer per person, and who keeps moving.

Raising an NSI for a CRN that already has an open one is refused, naming that NSI and the
`casetransfer amend` command, unless the form says `supersedes: REF`. Then, in the transaction that
stores the new NSI (tasks/domain/transfers.py: register_nsi), the old one is closed as
"superseded" (its open actions and waiting tasks cancelled; services stops its runs once that is
committed, as a withdrawal does), the two are linked both ways (Nsi.supersedes_reference,
Nsi.superseded_by_reference) and each history names the other. The old NSI's history is shown
with the new one's (tasks/domain/transfer_views.py: status_of), not copied: the store keeps
each line once, with its own date and actor.

A Temporary Move converted to a Case Transfer (tasks/domain/conversion.py) is the same move
going on: its Case Transfer is raised while the move is still open, and is not held to this rule.

A person with `repeat_mover.transfers` or more NSIs raised in the last `repeat_mover.months`
months (config/moving_again.yaml) is a repeat mover: one grouped query gives every such CRN, for
the status, the digests and the tracker alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tasks.config_files import read_yaml
from tasks.domain.form import FormError, TransferForm
from tasks.domain.transfer import CLOSED, NotFound, Transfer, Transfers
from tasks.settings import get_settings
from tasks.store.models import HistoryEntry, Nsi, WaitingTask
from tasks.store.unit_of_work import UnitOfWork

SUPERSEDED = "superseded"
SUPERSEDES_FIELD = "supersedes"


# ---- one open transfer per person ----


def open_nsis(session: Session, crn: str) -> list[str]:
    """References of the CRN's open NSIs, oldest first."""
    return list(session.scalars(select(Nsi.reference).where(Nsi.crn == crn, Nsi.status.not_in(CLOSED)).order_by(Nsi.id)))


def check_one_open(session: Session, form: TransferForm) -> Transfer | None:
    """The open NSI this form supersedes (its row locked until the transaction ends), or None.

    FormError, naming the field, when the CRN has an open NSI the form does not supersede, or the
    NSI it names is not an open NSI of the same CRN. The words name only what the raiser typed
    and the open NSI's reference: nothing of an LAO case beyond that, and not even the CRN, as a
    raise-transfer run fails with these words in Prefect."""
    problems: list[tuple[str, str]] = []
    target: Transfer | None = None
    if form.supersedes:
        ref = form.supersedes
        try:
            target = Transfers(session).get(ref, lock=True)
        except NotFound:
            problems.append((SUPERSEDES_FIELD, f"there is no NSI {ref} to supersede"))
        else:
            if target.nsi.crn != form.crn:
                problems.append((SUPERSEDES_FIELD, f"{ref} is another person's NSI (not this crn's): only the same person's open NSI can be superseded"))
            elif target.closed:
                problems.append((SUPERSEDES_FIELD, f"{ref} is already {target.nsi.status}: only an open NSI can be superseded"))
    others = [r for r in open_nsis(session, form.crn) if r != form.supersedes]
    if others:
        ref = others[0]
        problems.append((
            "crn",
            f"this person already has an open NSI, {ref}: one open transfer per person. Change it with "
            f"`casetransfer amend {ref}`, or raise this one with `--supersedes {ref}` (the form's `supersedes: {ref}`) "
            f"to close {ref} as superseded and carry its history across",
        ))  # fmt: skip
    if problems:
        raise FormError(problems)
    return target


def supersede(old: Transfer, new: Nsi, by: str, on: dt.date) -> list[str]:
    """Close `old` as superseded by `new` and link the two both ways; returns the flow runs to stop
    (the old transfer's and every task of it still open), as Transfer.withdraw does."""
    nsi = old.nsi
    runs = old.end(SUPERSEDED, on)
    nsi.superseded_by_reference = new.reference
    new.supersedes_reference = nsi.reference
    old.note(f"superseded:{new.reference}", SUPERSEDED, f"superseded by {new.reference}: the person is moving again", by)
    return runs


def superseded_runs(reference: str, url: str | None = None) -> list[str]:
    """The flow runs of the NSI `reference` superseded: its transfer's run and its cancelled tasks'
    runs (stopping a run that has already ended does nothing)."""
    with UnitOfWork(url) as uow:
        old = uow.session.scalar(select(Nsi.supersedes_reference).where(Nsi.reference == reference))
        if not old:
            return []
        row = uow.session.execute(select(Nsi.id, Nsi.flow_run_id).where(Nsi.reference == old)).first()
        if row is None:
            return []
        tasks = uow.session.scalars(
            select(WaitingTask.flow_run_id).where(
                WaitingTask.nsi_id == row.id, WaitingTask.status == "cancelled", WaitingTask.flow_run_id.is_not(None)
            )
        )
        return [r for r in [row.flow_run_id, *tasks] if r]


@dataclass(frozen=True)
class Before:
    """An open NSI as it was before a raise superseded it: what undoing that raise puts back."""

    reference: str
    status: str
    waiting_step: str | None
    open_actions: frozenset[int] = field(default_factory=frozenset)
    open_tasks: frozenset[int] = field(default_factory=frozenset)


def before_superseding(reference: str, url: str | None = None) -> Before | None:
    """The open NSI `reference` as it stands (None when there is none: the raise will refuse it)."""
    with UnitOfWork(url) as uow:
        try:
            nsi = Transfers(uow.session).get(reference).nsi
        except NotFound:
            return None
        return Before(
            nsi.reference,
            nsi.status,
            nsi.waiting_step,
            frozenset(a.id for a in nsi.actions if a.status == "open"),
            frozenset(t.id for t in nsi.tasks if t.status == "open"),
        )


def forget_superseding(reference: str, before: Before, url: str | None = None) -> bool:
    """Undo a superseding raise whose run could not be started: remove the new NSI (only one no
    run drives) and reopen the one it superseded as it was. One transaction; nothing half-stored."""
    with UnitOfWork(url) as uow:
        s = uow.session
        new = s.scalar(select(Nsi).where(Nsi.reference == reference, Nsi.flow_run_id.is_(None)))
        if new is None:
            return False
        old = Transfers(s).get(before.reference).nsi
        if old.superseded_by_reference == reference:
            old.status, old.waiting_step, old.closed_on, old.superseded_by_reference = before.status, before.waiting_step, None, None
            for a in old.actions:
                if a.id in before.open_actions:
                    a.status = "open"
            for t in old.tasks:
                if t.id in before.open_tasks:
                    t.status, t.closed_at = "open", None
            s.execute(delete(HistoryEntry).where(HistoryEntry.nsi_id == old.id, HistoryEntry.key == f"superseded:{reference}"))
        s.delete(new)
        uow.commit()
        return True


def earlier_nsis(session: Session, nsi: Nsi) -> list[Nsi]:
    """The NSIs this one superseded, directly or through others, oldest first."""
    chain: list[Nsi] = []
    seen = {nsi.reference}
    ref = nsi.supersedes_reference
    while ref and ref not in seen:
        seen.add(ref)
        row = session.scalar(select(Nsi).where(Nsi.reference == ref))
        if row is None:
            break
        chain.append(row)
        ref = row.supersedes_reference
    return chain[::-1]


# ---- repeat movers ----


@dataclass(frozen=True)
class RepeatMoverRule:
    transfers: int
    months: int
    not_counted: tuple[str, ...] = ()

    def words(self) -> str:
        return f"{self.transfers} or more transfers in {self.months} months"


def load_rule(config_dir: Path | None = None) -> RepeatMoverRule:
    cfg = (read_yaml((config_dir or get_settings().config_dir) / "moving_again.yaml") or {}).get("repeat_mover") or {}
    rule = RepeatMoverRule(int(cfg["transfers"]), int(cfg["months"]), tuple(cfg.get("not_counted") or ()))
    if rule.transfers < 2 or rule.months < 1:
        raise ValueError("config/moving_again.yaml repeat_mover: transfers must be 2 or more and months 1 or more")
    return rule


def repeat_movers(
    conn: Any, as_of: dt.date, crns: Collection[str] | None = None, rule: RepeatMoverRule | None = None
) -> dict[str, int]:
    """CRN -> NSIs raised in the rule's months up to `as_of`, for each repeat mover: one grouped
    query (a Session or a Connection), whatever the number of rows a report shows. `crns` narrows
    it to the CRNs a caller shows, when they are few enough to name."""
    rule = rule or load_rule()
    start = as_of - relativedelta(months=rule.months)
    query = (
        select(Nsi.crn, func.count())
        .where(Nsi.raised_on > start, Nsi.raised_on <= as_of, Nsi.parent_reference.is_(None))
        .group_by(Nsi.crn)
        .having(func.count() >= rule.transfers)
    )
    if rule.not_counted:
        query = query.where(Nsi.status.not_in(rule.not_counted))
    if crns is not None:
        wanted = sorted(set(crns))
        if not wanted:
            return {}
        if len(wanted) <= 500:
            query = query.where(Nsi.crn.in_(wanted))
    return {crn: int(n) for crn, n in conn.execute(query)}

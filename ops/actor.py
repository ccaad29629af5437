"""Who is acting on the command line (issue 28, item 4).

With settings `actor_from: typed` (the embedded demo, the tests) the record keeps the name given
with --by or --recorded-by, or the operating-system account, as before. With `os_account` (the
production profile) the person is the operating-system account mapped to a staff record
(config/staff/people.yaml `os_accounts`): an unmapped account is refused (exit 2), the person must
be allowed to act for the task's owner in the transfer's PDUs (config/access.yaml) before anything
is sent, and a typed name is kept only as "on behalf of" where the policy allows it.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

from ops.console import fail
from tasks.settings import get_settings

# The staff list and the rules are imported when a command asks who is acting (startup stays light).
if TYPE_CHECKING:
    from tasks.domain.access_log import Viewer
    from tasks.domain.staff import StaffList, StaffMember


def from_os_account() -> bool:
    return get_settings().actor_from == "os_account"


def staff() -> StaffList:
    from tasks.domain.staff import StaffError, load_staff

    try:
        return load_staff(get_settings().staff_file)
    except StaffError as exc:
        fail(f"The staff list was not read: {exc}", 1)


def signed_in(people: StaffList | None = None) -> StaffMember:
    """The staff member this operating-system account belongs to; refused (exit 2) when none."""
    account = getpass.getuser()
    person = (people or staff()).by_os_account(account)
    if person is None:
        fail(
            f"The account {account!r} is not mapped to anyone on the staff list (config/staff/people.yaml "
            "os_accounts): in the production profile the command line records who runs it, so nothing was done."
        )
    return person


def name(typed: str | None, reference: str, command: str | None = None, task: str | None = None, field: str = "--by") -> str:
    """The name the record keeps for this write. `command` names an entry of config/access.yaml
    `commands`; `task` a waiting task or action of the NSI, whose owner must be the person's."""
    if not from_os_account():
        return typed or getpass.getuser()
    from tasks.domain import access_log, lao_access, transfers
    from tasks.domain.staff import StaffError, may_answer, recorded_actor

    person = signed_in()
    try:
        parties = access_log.parties_of(reference)
        owners = lao_access.command_owners(command) if command else [o for o in [access_log.owner_of(reference, task or "")] if o]
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    except StaffError as exc:
        fail(str(exc))
    if not owners:
        fail(f"{reference.strip().upper()}: no task or action {task!r}, so no one may record it")
    decisions = [may_answer(person, o, parties.transferring_pdu, parties.receiving_pdu) for o in owners]
    allowed = next((d for d in decisions if d.allowed), None)
    if allowed is None:
        fail(f"{person.name} may not do this on {parties.reference}: {decisions[0].reason}. Nothing was sent.")
    actor, behalf = recorded_actor(person, typed)
    typed_words = " ".join((typed or "").split())
    if typed_words and behalf is None and typed_words.lower() != person.name.lower():
        print(f"note: {field} {typed_words!r} ignored: the record says who ran this, {person.name}", file=sys.stderr)
    recorded = f"{actor} on behalf of {behalf}" if behalf else actor
    return f"{recorded} (as ops)" if allowed.as_ops else recorded


def viewer(as_signin: str | None) -> tuple[StaffList, Viewer]:
    """Who is looking at an NSI's details: in the production profile the signed-in person (an
    `--as` naming someone else is ignored, with a note); otherwise the staff member `--as` names,
    or nobody on the staff list (an LAO case is then shown restricted)."""
    from tasks.domain.access_log import Viewer

    people = staff()
    if from_os_account():
        person = signed_in(people)
        if as_signin and people.by_signin(as_signin) is not person:
            print(f"note: --as {as_signin!r} ignored: you are {person.name} ({person.signin})", file=sys.stderr)
        return people, Viewer(person, person.name, getpass.getuser())
    if as_signin is None:
        return people, Viewer(None, getpass.getuser(), getpass.getuser())
    person = people.by_signin(as_signin)
    if person is None:
        fail(f"--as: no one on the staff list signs in as {as_signin!r} (config/staff/people.yaml)")
    return people, Viewer(person, person.name)

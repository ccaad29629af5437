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
    from tasks.domain.form import TransferForm
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
    `commands`; `task` a waiting task or action of the NSI, whose owner must be the person's.
    Outside production a typed name is kept as typed (the form refuses an empty one)."""
    if not from_os_account():
        return typed if typed is not None else getpass.getuser()
    from tasks.domain import access_log, lao_access, transfers
    from tasks.domain.staff import StaffError

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
    return _checked(person, typed, owners, parties.reference, parties.transferring_pdu, parties.receiving_pdu, field)


def anyone(typed: str | None, field: str = "--by") -> str:
    """A write that belongs to no transfer's side (a POM-COM handover): in the production profile
    any person on the staff list, recorded as themselves; an unmapped account is refused."""
    if not from_os_account():
        return typed or getpass.getuser()
    return _recorded(signed_in(), typed, field)


def raiser(form: TransferForm) -> TransferForm:
    """`raise` in the production profile: the signed-in person, who must be allowed to act for the
    transferring side (config/access.yaml `commands.raise`), is the form's `raised_by`."""
    if not from_os_account():
        return form
    from tasks.domain import lao_access
    from tasks.domain.policy import get_policy
    from tasks.places.placement import check_placement, place

    placement = place(form)
    transferring_pdu = check_placement(form, placement, get_policy())[0]
    owners = lao_access.command_owners("raise")
    who = _checked(signed_in(), form.raised_by, owners, "a new NSI", transferring_pdu, placement.receiving_pdu_code, "raised_by")
    return form.model_copy(update={"raised_by": who})


def _checked(person: StaffMember, typed: str | None, owners: list[str], what: str, transferring: str, receiving: str, field: str) -> str:
    """Refused (exit 2, nothing sent) unless the person may act for one of `owners` between these
    PDUs; else the recorded name, with "on behalf of" only where the policy allows it."""
    from tasks.domain.staff import may_answer

    decisions = [may_answer(person, o, transferring, receiving) for o in owners]
    allowed = next((d for d in decisions if d.allowed), None)
    if allowed is None:
        fail(f"{person.name} may not do this on {what}: {decisions[0].reason}. Nothing was sent.")
    return _recorded(person, typed, field, allowed.as_ops)


def _recorded(person: StaffMember, typed: str | None, field: str, as_ops: bool = False) -> str:
    from tasks.domain.staff import recorded_actor, recorded_words

    if typed is not None and not isinstance(typed, str):
        fail(f"{field}: give one name, once")
    typed_words = " ".join((typed or "").split())
    if typed_words and recorded_actor(person, typed)[1] is None and typed_words.lower() != person.name.lower():
        print(f"note: {field} {typed_words!r} ignored: the record says who ran this, {person.name}", file=sys.stderr)
    return recorded_words(person, typed, as_ops)


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

"""Limited access cases and the access log in the store, on SQLite and PostgreSQL (no Prefect):
the default access list, `grant`, `status` restricted or whole, every look logged; and the
command line in the production profile recording the person who runs it (issue 28)."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete, func, select
from support.cli import cli

from tasks.domain import access_log, transfer_views, transfers
from tasks.domain.access_log import Viewer
from tasks.domain.decisions import RuleBroken
from tasks.domain.form import parse_form
from tasks.domain.staff import PEOPLE_FILE, load_staff
from tasks.settings import ROOT, reset_settings
from tasks.store.models import AccessLogEntry, HistoryEntry, LaoGrant, Nsi
from tasks.store.unit_of_work import UnitOfWork

LAO_FORM = ROOT / "demo" / "forms" / "newcastle-to-leeds-lao.yaml"  # Newcastle (N54NUTY) to Leeds (N55LEE)
SECRETS = ("Restricted Person", "Trial Street", "Demo Terrace", "New job in Leeds")


def raise_lao(key: str = "lao-1", **changes: object) -> str:
    form = yaml.safe_load(LAO_FORM.read_text()) | changes
    return transfers.register_nsi(parse_form(form), key)


@pytest.fixture
def staff():
    return load_staff()


def as_(staff, signin: str) -> Viewer:
    return Viewer(staff.by_signin(signin), staff.by_signin(signin).name)


def rows(model: type) -> int:
    with UnitOfWork() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def test_the_receiving_spo_is_on_the_default_list_and_another_pdus_practitioner_is_not(store_url, staff):
    ref = raise_lao(transferring_practitioner="Casey  Practitioner")
    # Named on the NSI (by name, spacing and case aside), or an SPO of either side; Robin works in
    # Leeds but is not named, Kim is an SPO of neither side.
    listed = [(p.signin, why) for p, why in access_log.access_list(ref, staff)]
    assert listed == [("lee.spo", "default"), ("casey.practitioner", "default")]


def test_a_practitioner_not_on_the_list_sees_it_restricted_one_on_it_whole_and_both_looks_are_logged(store_url, staff):
    ref = raise_lao()
    transfers.escalate(ref, "Lives near the victim at 3 Trial Street", "Lee SPO")
    shown, decision = access_log.look(ref, as_(staff, "casey.practitioner"), staff)
    assert not decision.allowed and shown.name == "Restricted (LAO)"
    assert not any(secret in repr(shown) for secret in SECRETS)
    whole, allowed = access_log.look(ref, as_(staff, "lee.spo"), staff)
    assert allowed.allowed and whole.name == "Restricted Person"
    assert any("Trial Street" in h.detail for h in whole.history)

    looks = [(line.what, line.actor) for line in access_log.access_entries(ref) if line.kind == "look"]
    assert looks == [("status refused", "Casey Practitioner"), ("status allowed", "Lee SPO")]
    # The changes are the history's, with its actor; their free text stays in the history.
    changes = [(line.what, line.actor, line.detail) for line in access_log.access_entries(ref) if line.kind == "change"]
    assert ("escalated", "Lee SPO", "") in changes


def test_a_grant_lets_a_person_see_it_whole_and_the_history_says_who_granted_it_and_why(store_url, staff):
    ref = raise_lao()
    assert access_log.grant(ref, "casey.practitioner", "Covering Nat's cases", "Lee SPO", staff).endswith("may now see it")
    shown, decision = access_log.look(ref, as_(staff, "casey.practitioner"), staff)
    assert decision.allowed and shown.name == "Restricted Person"
    granted = [h for h in transfer_views.status_of(ref).history if h.event == access_log.GRANTED]
    assert [(h.actor, h.detail) for h in granted] == [
        ("Lee SPO", "Casey Practitioner (casey.practitioner) may see this limited access case: Covering Nat's cases")
    ]
    again = access_log.grant(ref, "casey.practitioner", "Again", "Lee SPO", staff)
    assert "may already see it" in again and rows(LaoGrant) == 1


def test_a_bad_grant_names_the_field_and_stores_nothing(store_url, staff):
    ref = raise_lao()
    plain = transfers.register_nsi(parse_form(yaml.safe_load(LAO_FORM.read_text()) | {"lao": False, "crn": "A111222"}), "plain")
    history = rows(HistoryEntry)
    for reference, signin, reason, field in [(ref, "no.one", "Cover", "staff"), (ref, "casey.practitioner", "  ", "reason"),
                                             (plain, "casey.practitioner", "Cover", "reference")]:  # fmt: skip
        with pytest.raises(RuleBroken) as exc:
            access_log.grant(reference, signin, reason, "Lee SPO", staff)
        assert exc.value.field == field
    assert (rows(LaoGrant), rows(HistoryEntry)) == (0, history)


def test_the_access_list_and_the_log_go_with_the_nsi(store_url, staff):
    ref = raise_lao()
    access_log.grant(ref, "casey.practitioner", "Cover", "Lee SPO", staff)
    access_log.look(ref, as_(staff, "robin.practitioner"), staff)
    assert (rows(LaoGrant), rows(AccessLogEntry)) == (1, 1)
    with UnitOfWork() as uow:  # as the database deletes it, not the ORM: the foreign keys cascade
        uow.session.execute(delete(Nsi).where(Nsi.reference == ref))
        uow.commit()
    assert (rows(LaoGrant), rows(AccessLogEntry)) == (0, 0)


# ---- the command line ----


def people_file(tmp_path: Path, signin: str | None) -> Path:
    """The example staff list with this machine's account mapped to `signin` (None: to nobody)."""
    doc = yaml.safe_load(PEOPLE_FILE.read_text())
    for person in doc["people"]:
        person["os_accounts"] = [getpass.getuser()] if person["signin"] == signin else []
    path = tmp_path / "people.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def production_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The command line as the production profile runs it: the actor is the OS account."""

    def signed_in_as(signin: str | None) -> None:
        monkeypatch.setenv("CASETRANSFER_ACTOR_FROM", "os_account")
        monkeypatch.setenv("CASETRANSFER_STAFF_FILE", str(people_file(tmp_path, signin)))
        reset_settings()

    return signed_in_as


def test_status_on_the_command_line_is_restricted_unless_you_name_yourself_on_the_list(store_url):
    ref = raise_lao()
    anonymous = cli("status", ref)
    assert "Restricted (LAO)" in anonymous.stdout and "not on the staff list" in anonymous.stderr
    assert not any(secret in anonymous.stdout for secret in SECRETS)
    assert "Restricted Person" in cli("status", ref, "--as", "lee.spo").stdout
    assert "Restricted Person" not in cli("status", ref, "--as", "robin.practitioner", "--json").stdout
    unknown = cli("status", ref, "--as", "nobody", check=False)
    assert unknown.returncode == 2 and "--as: no one on the staff list signs in as 'nobody'" in unknown.stderr
    log = cli("access-log", ref).stdout
    assert "status refused" in log and "status allowed" in log and "Lee SPO" in log


def test_in_production_the_cli_records_the_signed_in_person_whatever_was_typed(store_url, production_cli):
    ref = raise_lao()
    production_cli("robin.practitioner")  # a practitioner of the receiving PDU, Leeds
    done = cli("action-done", ref, "oasys_reassessment", "--by", "Lee SPO")
    assert "note: --by 'Lee SPO' ignored: the record says who ran this, Robin Practitioner" in done.stderr
    entry = [h for h in transfer_views.status_of(ref).history if h.event == "action done"][-1]
    assert entry.actor == "Robin Practitioner"
    # Robin looks as Robin, whatever --as says: not on the list, so restricted, and logged as Robin.
    looked = cli("status", ref, "--as", "lee.spo")
    assert "Restricted (LAO)" in looked.stdout and "--as 'lee.spo' ignored" in looked.stderr
    with UnitOfWork() as uow:
        last = uow.session.scalars(select(AccessLogEntry).order_by(AccessLogEntry.id.desc())).first()
        assert (last.actor, last.signin, last.os_account, last.allowed) == ("Robin Practitioner", "robin.practitioner", getpass.getuser(), False)


def test_in_production_another_pdus_staff_are_refused_before_anything_is_stored(store_url, production_cli):
    ref = raise_lao()
    history = rows(HistoryEntry)
    production_cli("casey.practitioner")  # Newcastle: the transferring side, not the receiving practitioner
    refused = cli("action-done", ref, "oasys_reassessment", check=False)
    assert refused.returncode == 2
    assert "Casey Practitioner may not do this on" in refused.stderr and "does not work in N55LEE" in refused.stderr
    no_grant = cli("grant", ref, "--staff", "casey.practitioner", "--reason", "Please", check=False)
    assert no_grant.returncode == 2 and "may not do this" in no_grant.stderr
    assert (rows(HistoryEntry), rows(LaoGrant)) == (history, 0)


def test_in_production_an_unmapped_account_is_refused_with_a_clear_message(store_url, production_cli):
    ref = raise_lao()
    history = rows(HistoryEntry)
    production_cli(None)
    refused = cli("action-done", ref, "oasys_reassessment", "--by", "Robin Practitioner", check=False)
    assert refused.returncode == 2
    assert f"The account {getpass.getuser()!r} is not mapped to anyone on the staff list" in refused.stderr
    assert cli("status", ref, check=False).returncode == 2
    assert rows(HistoryEntry) == history


def test_in_production_ops_may_act_on_anything_and_the_record_says_so(store_url, production_cli):
    ref = raise_lao()
    production_cli("ops.one")
    cli("grant", ref, "--staff", "casey.practitioner", "--reason", "Covering Nat's cases")
    granted = [h for h in transfer_views.status_of(ref).history if h.event == access_log.GRANTED]
    assert [h.actor for h in granted] == ["Ops One (ops)"]


def test_in_production_a_case_admin_may_record_on_behalf_of_a_practitioner(store_url, production_cli, tmp_path):
    ref = raise_lao(transferring_practitioner="Casey Practitioner")
    doc = yaml.safe_load(PEOPLE_FILE.read_text())
    doc["people"].append({"signin": "ash.admin", "name": "Ash Admin", "staff_id": "EX0203", "roles": ["case_admin"],
                          "pdus": ["N55LEE"], "os_accounts": [], "example": True})  # fmt: skip
    production_cli(None)
    for person in doc["people"]:
        person["os_accounts"] = [getpass.getuser()] if person["signin"] == "ash.admin" else []
    (tmp_path / "people.yaml").write_text(yaml.safe_dump(doc))
    cli("action-done", ref, "police_checks", "--by", "Robin Practitioner")
    entry = [h for h in transfer_views.status_of(ref).history if h.event == "action done"][-1]
    assert entry.actor == "Ash Admin on behalf of Robin Practitioner"


def test_in_production_raising_and_recording_are_refused_to_staff_of_the_wrong_side_before_anything_is_sent(
    store_url, production_cli
):
    ref = raise_lao()
    nsis, history = rows(Nsi), rows(HistoryEntry)
    production_cli("robin.practitioner")  # Leeds: the receiving side of Newcastle to Leeds
    raised = cli("raise", str(LAO_FORM), check=False)
    assert raised.returncode == 2
    assert "Robin Practitioner may not do this on a new NSI: Robin Practitioner does not work in N54NUTY" in raised.stderr
    allocation = ["--practitioner", "Robin Practitioner", "--team-code", "N55LSC", "--recorded-by", "Lee SPO"]
    recorded = cli("record", ref, "allocation", *allocation, check=False)
    assert recorded.returncode == 2 and "needs a SPO of N55LEE" in recorded.stderr and "Nothing was sent" in recorded.stderr
    assert (rows(Nsi), rows(HistoryEntry)) == (nsis, history)


@pytest.mark.parametrize(
    "command",
    [
        ["withdraw", "--reason", "No longer moving"],
        ["escalate", "--concern", "No allocation"],
        ["challenge", "--concern", "Victim nearby"],
        ["dispute", "--grounds", "Risk is managed"],
        ["amend", "--rosh", "High", "--reason", "New intelligence"],
        ["stop-clock", "--reason", "recall", "--from", "2026-12-16"],
        ["restart-clock", "--on", "2026-12-21"],
        ["absence", "--on", "2026-12-18", "--acceptable", "no"],
        ["correct", "allocation", "--done-on", "2026-12-15", "--reason", "Misread"],
    ],
    ids=lambda c: c[0],
)
def test_in_production_every_write_is_refused_to_someone_who_works_on_neither_side(store_url, production_cli, command):
    ref = raise_lao()
    history = rows(HistoryEntry)
    production_cli("kim.spo")  # an SPO of Manchester; the case goes from Newcastle to Leeds
    refused = cli(command[0], ref, *command[1:], "--by", "Lee SPO", check=False)
    assert refused.returncode == 2 and "Kim SPO may not do this on" in refused.stderr and "Nothing was sent" in refused.stderr
    assert rows(HistoryEntry) == history


def workbook_text(folder: Path) -> str:
    import openpyxl

    cells = []
    for path in sorted(folder.rglob("N*.xlsx")):
        for sheet in openpyxl.load_workbook(path, read_only=True).worksheets:
            cells += [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    return "\n".join(cells)


def test_a_persons_own_tracker_shows_the_cases_on_their_list_whole_and_logs_each_limited_access_row(store_url, tmp_path):
    ref = raise_lao()
    cli("tracker", "--out", str(tmp_path / "lee"), "--as", "lee.spo", "--region", "N55")  # Leeds receives it
    cli("tracker", "--out", str(tmp_path / "robin"), "--as", "robin.practitioner", "--region", "N55")
    mine, theirs = workbook_text(tmp_path / "lee"), workbook_text(tmp_path / "robin")
    assert ref in mine and "Restricted Person" in mine
    assert ref in theirs and "Restricted Person" not in theirs and "Restricted (LAO)" in theirs
    with UnitOfWork() as uow:
        logged = uow.session.execute(select(AccessLogEntry.surface, AccessLogEntry.actor, AccessLogEntry.allowed)).all()
    assert sorted(logged) == [("tracker", "Lee SPO", True), ("tracker", "Robin Practitioner", False)]
    refused = cli("tracker", "--as", "lee.spo", "--send", check=False)
    assert refused.returncode == 2 and "never delivered" in refused.stderr

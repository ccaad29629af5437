"""Personal data stays in the store: a transfer taken through every task, then every surface of the
Prefect API searched (flow runs with their names, parameters and states, task runs, run inputs,
artifacts, logs, events), and for a restricted (LAO) case every email and workbook too. On the
shared Prefect stack, with the domain store on SQLite and on PostgreSQL (the runs are given the
store's URL, as a transfer's run forwards it to its tasks).

Each test's person has details no other test uses, so a hit can only be a leak of this one.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import openpyxl
import pytest
import yaml
from conftest import ROOT, demo_form
from support.smtp import SmtpServer, smtp_on_loopback
from support.waits import prefect_api, wait_for

import services
from prefect_runs import engine
from tasks.domain import steps as registry
from tasks.domain import transfer_views
from tasks.domain.form import parse_form
from tasks.places.estate import load_estate
from tasks.settings import reset_settings

pytestmark = pytest.mark.prefect

RAISED = "2026-11-30"  # three weeks before the pinned today: actions are overdue, so digests go out
DONE = "2026-12-14"
STAFF = "Kim SPO"
LAO_FORM = ROOT / "demo" / "forms" / "newcastle-to-leeds-lao.yaml"


class Person:
    """Details no other test uses, and every form they could be written in."""

    def __init__(self, tag: str):
        token = uuid.uuid4().hex[:6]
        self.name = f"Quillon Zebedary {token.title()}"
        self.dob = dt.date(1968, 3, 1) + dt.timedelta(days=int(token, 16) % 9000)
        self.current_address = f"{int(token[:2], 16) + 1} Marigold Crescent {token}, Newcastle upon Tyne"
        self.proposed_address = f"{int(token[2:4], 16) + 1} Juniper Wharf {token}, Leeds"
        self.reason = f"Moving to care for a relative {token}"
        self.free_text = f"FREETEXT-{tag}-{token}"  # every note, concern and piece of evidence typed

    def details(self) -> dict[str, str]:
        d = self.dob
        return {
            "name": self.name,
            "surname": self.name.split()[1],
            "date of birth (ISO)": d.isoformat(),
            "date of birth (d/m/Y)": d.strftime("%d/%m/%Y"),
            "date of birth (d/m/Y unpadded)": f"{d.day}/{d.month}/{d.year}",
            "date of birth (d Month Y)": d.strftime("%d %B %Y"),
            "current address": self.current_address.split(",")[0],
            "proposed address": self.proposed_address.split(",")[0],
            "reason for the move": self.reason,
        }

    def form(self, base: dict[str, Any], crn: str) -> dict[str, Any]:
        return {
            **base, "crn": crn, "name": self.name, "date_of_birth": self.dob.isoformat(), "raised_on": RAISED,
            "current_address": self.current_address, "proposed_address": self.proposed_address, "reason_for_move": self.reason,
        }  # fmt: skip


@pytest.fixture
def stack_store(prefect_stack: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The shared Prefect stack, this test's store (its runs told the URL) and a data folder of
    its own for real mailboxes (the postcode index is linked from the shared one)."""
    from tasks.places.locator import build_index, index_dir

    build_index()
    shared_index = index_dir()
    data = tmp_path / "data"
    data.mkdir()
    (data / shared_index.name).symlink_to(shared_index, target_is_directory=True)
    monkeypatch.setenv("CASETRANSFER_DATA_DIR", str(data))
    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", store_url)
    reset_settings()
    with prefect_api(prefect_stack):
        yield prefect_stack


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def run_env(store_url: str) -> dict[str, Any]:
    return {"env": {"CASETRANSFER_DATABASE_URL": store_url}}


def raise_from_the_run_form(form: dict[str, Any], store_url: str) -> tuple[str, str]:
    """The UI's Run form: a raise-transfer run with the whole form as its parameter."""
    run_id = engine.start_run("raise-transfer/raise-transfer", {"form": form}, job_variables=run_env(store_url))
    assert engine.wait_until_final(run_id, timeout=180) == "Completed"
    with _client() as client:
        parameters = client.read_flow_run(UUID(run_id)).parameters
    return parameters["reference"], run_id


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def answer_for(task: str, reference: str, team_code: str, free_text: str) -> dict[str, Any]:
    """A complete answer to any task's form, dated when the work was done, every note free text."""
    spec = registry.spec_for(task, transfer_views.policy_of(reference))
    fields: dict[str, Any] = {"recorded_by": STAFF, "done_on": DONE}
    for name, info in spec.form.model_fields.items():
        if name in ("notes", "evidence", "receiving_responsibilities", "home_responsibilities"):
            fields[name] = f"{free_text} {name}"
        elif name in ("practitioner", "responsible_officer", "support_contact"):
            fields[name] = "Pat Receiver"
        elif name == "team_code":
            fields[name] = team_code
        elif name == "method":
            fields[name] = "home_visit"
        elif name == "suitable":
            fields[name] = True
        elif name == "outcome":
            fields[name] = "withdraw"  # a challenge withdrawn: the transfer carries on
        elif name == "appointment_on":
            fields[name] = DONE
        elif name == "place":
            fields[name] = "Bolton probation office"
        elif name == "with_whom":
            fields[name] = "Pat Receiver"
        elif name == "kept":
            fields[name] = True
        elif info.is_required() and name not in fields:
            raise AssertionError(f"no test answer for {task}.{name}")
    if task == "completion":
        fields["done_on"] = "2026-12-21"
    return fields


def take_through_every_task(reference: str, person: Person) -> None:
    """Allocation, every task after it (a challenge about risk raised and withdrawn on the way),
    then completion; each answered through the one path (services)."""
    from tasks.store.models import Nsi
    from tasks.store.unit_of_work import UnitOfWork

    with UnitOfWork() as uow:
        pdu = uow.session.query(Nsi).filter_by(reference=reference).one().receiving_pdu_code
    team = next(t.code for t in load_estate().teams.values() if t.pdu_code == pdu)
    services.send_answer(reference, "allocation", answer_for("allocation", reference, team, person.free_text), timeout=180)
    services.challenge(reference, f"{person.free_text} concern", "Pat Receiver", "receiving_pp")
    answered = {"allocation"}
    deadline = time.monotonic() + 600
    while transfer_views.nsi_status(reference)[0] != "completed":
        assert time.monotonic() < deadline, f"{reference} did not complete: {transfer_views.nsi_status(reference)}"
        now = transfer_views.status_of(reference)
        # An action done by another answer (documents received count as sent) closes its task at
        # the transfer's next wake: not one to answer.
        done = {a.code for a in now.actions if a.status == "done"}
        waiting = [t.task for t in now.tasks if t.flow_run_id and t.task not in answered and t.task not in done]
        if not waiting:
            time.sleep(0.5)
            continue
        task = next((t for t in waiting if t != "completion"), waiting[0])
        services.send_answer(reference, task, answer_for(task, reference, team, person.free_text), timeout=180)
        answered.add(task)
    assert {"police_checks", "address_assessment", "handover", "challenge-1", "completion"} <= answered


def prefect_surfaces(since: dt.datetime) -> dict[str, str]:
    """Everything the Prefect API gives to anyone who can reach it, as text, by surface."""
    api = engine.api_url()
    out: dict[str, list[Any]] = {"flow runs": [], "flow run states": [], "task runs": [], "run inputs": [],
                                 "artifacts": [], "logs": [], "events": []}  # fmt: skip
    with httpx.Client(base_url=api, timeout=60) as http:

        def page(path: str, key: str | None = None, **body: Any) -> list[Any]:
            rows: list[Any] = []
            offset = 0
            while True:
                got = http.post(path, json={**body, "limit": 200, "offset": offset})
                got.raise_for_status()
                batch = got.json()[key] if key else got.json()
                rows += batch
                if len(batch) < 200:
                    return rows
                offset += 200

        runs = page("/flow_runs/filter")
        out["flow runs"] = runs
        for run in runs:
            out["flow run states"] += http.get("/flow_run_states/", params={"flow_run_id": run["id"]}).json()
            inputs = http.post(f"/flow_runs/{run['id']}/input/filter", json={"prefix": "", "limit": 1000})
            inputs.raise_for_status()
            out["run inputs"] += inputs.json()
        out["task runs"] = page("/task_runs/filter")
        out["artifacts"] = page("/artifacts/filter")
        out["logs"] = page("/logs/filter")
        events = http.post("/events/filter", json={"filter": {"occurred": {"since": since.isoformat()}}, "limit": 50})
        events.raise_for_status()
        body = events.json()
        out["events"] = list(body["events"])
        while body.get("next_page"):
            body = http.get(body["next_page"]).json()
            out["events"] += body["events"]
    return {surface: json.dumps(rows) for surface, rows in out.items()}


def events_saved(run_id: str, since: dt.datetime) -> bool:
    """Prefect saves events a moment after they happen: the transfer's run's Completed one is last."""
    response = httpx.post(
        f"{engine.api_url()}/events/filter",
        json={"filter": {"occurred": {"since": since.isoformat()}, "event": {"name": ["prefect.flow-run.Completed"]},
                         "resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 1},  # fmt: skip
        timeout=30,
    )
    return bool(response.json().get("events"))


def found(texts: dict[str, str], needles: dict[str, str]) -> list[str]:
    return [f"{what} in {where}" for where, text in texts.items() for what, needle in needles.items() if needle.lower() in text.lower()]


def mailboxes_for(reference: str, data_dir: Path) -> None:
    """Real (not example) mailboxes for the PDUs on both sides, so the digests go by SMTP."""
    from tasks.store.models import Nsi
    from tasks.store.unit_of_work import UnitOfWork

    with UnitOfWork() as uow:
        nsi = uow.session.query(Nsi).filter_by(reference=reference).one()
        codes = {nsi.transferring_pdu_code, nsi.receiving_pdu_code}
    folder = data_dir / "spocs.d"
    folder.mkdir(exist_ok=True)
    entries = {code: {"mailbox": f"transfers.{code.lower()}@probation.test", "role": "SPO", "example": False}
               for code in codes}  # fmt: skip
    (folder / "privacy.yaml").write_text(yaml.safe_dump({"spocs": entries}))
    reset_settings()


def workbook_text(folder: Path) -> str:
    cells = []
    for path in sorted(folder.rglob("*.xlsx")):
        wb = openpyxl.load_workbook(path, read_only=True)
        for ws in wb.worksheets:
            cells += [str(v) for row in ws.iter_rows(values_only=True) for v in row if v is not None]
    return "\n".join(cells)


def test_a_restricted_case_taken_through_every_task_leaves_its_details_nowhere_in_prefect_the_emails_or_the_workbooks(
    stack_store, store_url, smtp, tmp_path
):
    from tasks.notify.digests import run_reminders
    from tasks.reports.tracker import run_tracker

    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    person = Person("lao")
    crn = f"L{uuid.uuid4().int % 900000 + 100000}"
    base = yaml.safe_load(LAO_FORM.read_text())
    reference, raise_run = raise_from_the_run_form(person.form(base, crn), store_url)
    view = transfer_views.status_of(reference)
    assert view.lao and view.name == person.name  # the store is the record: it has everything
    assert transfer_views.status_of(reference).flow_run_id

    # Mid-way, with actions overdue: the morning's digests by SMTP and the night's workbooks.
    mailboxes_for(reference, tmp_path / "data")
    run_reminders(dt.date(2026, 12, 21))
    take_through_every_task(reference, person)
    run_run_id = transfer_views.status_of(reference).flow_run_id or ""
    run_tracker(dt.date(2026, 12, 21), tmp_path / "trackers")
    wait_for(lambda: engine.run_state(run_run_id)[0] == "COMPLETED", timeout=180, what="the transfer's run to complete")
    wait_for(lambda: events_saved(run_run_id, since), timeout=60, what="the run's events to be saved")

    # Prefect holds the reference: not the name, the date of birth, the addresses, not even the CRN in a name.
    with _client() as client:
        runs = [client.read_flow_run(UUID(r)) for r in (raise_run, run_run_id)]
    assert [r.parameters for r in runs] == [{"reference": reference}, {"reference": reference}]
    assert [r.name for r in runs] == [f"raise-{reference}", f"transfer-{reference}"]
    surfaces = prefect_surfaces(since)
    run_names = [r["name"] for r in json.loads(surfaces["flow runs"]) + json.loads(surfaces["task runs"])]
    assert not [n for n in run_names if crn in n]
    assert reference in surfaces["flow runs"] and reference in surfaces["artifacts"]  # the search can find
    messages = smtp.inbox.messages
    assert messages, "the digests were sent by SMTP"
    emails = "\n".join(m.as_string() for _, m in messages)
    assert crn in emails  # the digest names the case by its CRN ...
    workbooks = workbook_text(tmp_path / "trackers")
    assert reference in workbooks and "Restricted (LAO)" in workbooks
    everywhere = {**surfaces, "emails": emails, "workbooks": workbooks}
    assert found(everywhere, person.details()) == []  # ... and nothing else about the person
    assert found(surfaces, {"free text": person.free_text}) == []


def test_an_ordinary_case_keeps_its_details_and_answers_out_of_prefect(stack_store, store_url, tmp_path):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    person = Person("open")
    crn = f"P{uuid.uuid4().int % 900000 + 100000}"
    form = parse_form(person.form(demo_form(), crn))
    reference, run_id = services.raise_transfer(form, run_env(store_url))  # the CLI's path
    take_through_every_task(reference, person)
    run_id = transfer_views.status_of(reference).flow_run_id or run_id
    wait_for(lambda: engine.run_state(run_id)[0] == "COMPLETED", timeout=180, what="the transfer's run to complete")
    wait_for(lambda: events_saved(run_id, since), timeout=60, what="the run's events to be saved")
    surfaces = prefect_surfaces(since)
    assert reference in surfaces["run inputs"]  # the forms' descriptions: the reference ...
    details = {k: v for k, v in person.details().items() if k not in ("name", "surname")}
    assert found(surfaces, {**details, "free text": person.free_text}) == []  # ... no details, no answers
    assert found(surfaces, {"name": person.name}) == []  # the name stays in the store too

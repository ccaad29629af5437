"""Who is acting (issue 28): the production profile with nginx in front for real, each person
signing in with their own local (htpasswd) account over HTTPS, and the people's API deciding who
may answer what. The record names the signed-in person, whatever they typed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml
from conftest import PG_ADMIN_URL, TODAY, _clear_caches, demo_form
from support.cli import cli
from support.production import Production, local_proxy, pointed_at, running_production
from support.transfers import ALLOCATION, RAISED
from support.waits import wait_for

from ops.proxy import nginx_binary
from tasks.domain import transfer_views
from tasks.settings import ROOT

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.postgres,
    pytest.mark.skipif(
        nginx_binary() is None, reason="nginx is not installed (Debian: apt-get install nginx; .ci/run installs it where it can)"
    ),
]

PEOPLE = ("kim.spo", "lee.spo", "pat.receiver", "morgan.head")
PASSWORDS = {signin: f"{signin}-{uuid.uuid4().hex[:12]}" for signin in PEOPLE}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """up-production with auth_mode local: nginx on TLS with a self-signed certificate, an
    account for each person, the people's API behind it; one worker. This process (and the CLI
    run in it, as the stack's own service identity) points at it for this module only."""
    base = tmp_path_factory.mktemp("proxied")
    proxy = local_proxy(base / "prefect" / "proxy", PASSWORDS)
    env = {
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # shares the built postcode index
        "CASETRANSFER_TODAY": TODAY.isoformat(),
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
        "CASETRANSFER_ALLOW_EXAMPLE_STAFF": "true",  # the example staff of config/staff/people.yaml sign in
    }
    # Workers at the people's priority: what is tested here is who acts, not who waits for the CPU,
    # and on a shared CI machine a niced worker can wait minutes for its first run.
    running = running_production(PG_ADMIN_URL, base, env, workers=1, proxy=proxy, worker_nice=0)
    with running as production, pytest.MonkeyPatch.context() as mp, pointed_at(production, mp):
        yield production


@pytest.fixture(scope="module")
def waiting(proxied: Production, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A London-to-Manchester transfer whose allocation waits for Manchester South's SPO."""
    path = tmp_path_factory.mktemp("forms") / "C900001.yaml"
    path.write_text(yaml.safe_dump(demo_form(crn="C900001", raised_on=RAISED)))
    _clear_caches()
    reference = cli("raise", str(path)).stdout.strip()
    wait_for(paused_at(reference, "allocation"), what="the allocation task to wait", timeout=240)
    return reference


def task_run(reference: str, task: str) -> str | None:
    found = transfer_views.task_round(reference, task)
    return found[2] if found is not None and found[1] == "open" else None


def paused_at(reference: str, task: str) -> Any:
    from prefect_runs import engine

    return lambda: (run := task_run(reference, task)) is not None and engine.run_state(run)[0] == "PAUSED"


@contextmanager
def as_person(proxied: Production, signin: str, password: str | None = None) -> Iterator[httpx.Client]:
    """What the UI does in a person's browser: HTTPS to nginx with their account, and the CSRF
    token Prefect asks for before any change."""
    proxy = proxied.stack.proxy
    auth = (signin, password or PASSWORDS[signin])
    with httpx.Client(base_url=f"{proxy.url}/api", auth=auth, verify=str(proxy.cert), timeout=60) as client:
        csrf_client = uuid.uuid4().hex
        token = client.get("/csrf-token", params={"client": csrf_client})
        if token.status_code == 200:
            client.headers.update({"Prefect-Csrf-Client": csrf_client, "Prefect-Csrf-Token": token.json()["token"]})
        yield client


def resume(proxied: Production, signin: str, reference: str, task: str, answer: dict[str, Any]) -> httpx.Response:
    run = task_run(reference, task)
    assert run is not None, f"{reference}: {task} is not open"
    with as_person(proxied, signin) as client:
        return client.post(f"/flow_runs/{run}/resume", json={"run_input": answer})


ALLOCATION_ANSWER = {"practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": ALLOCATION[-1]}


def test_another_pdus_spo_gets_403_on_the_receiving_spos_task_and_it_still_waits(proxied, waiting):
    refused = resume(proxied, "lee.spo", waiting, "allocation", {**ALLOCATION_ANSWER, "recorded_by": "Kim SPO"})
    assert refused.status_code == 403
    assert "Lee SPO does not work in N50GMS, the receiving PDU" in refused.json()["detail"]
    assert not transfer_views.step_state(waiting, "allocation").recorded
    assert paused_at(waiting, "allocation")()


def test_a_person_resumes_their_own_task_through_nginx_and_is_recorded_whatever_they_typed(proxied, waiting):
    answered = resume(proxied, "kim.spo", waiting, "allocation", {**ALLOCATION_ANSWER, "recorded_by": "Somebody Else"})
    assert answered.status_code in (200, 201) and answered.json()["status"] == "ACCEPT", answered.text
    recorded = wait_for(lambda: (s := transfer_views.step_state(waiting, "allocation")).recorded and s, what="the allocation")
    assert recorded.recorded_by == "Kim SPO"
    history = transfer_views.status_of(waiting).history
    assert [h.actor for h in history if h.event == "allocation"] == ["Kim SPO"]
    assert not [h for h in history if "Somebody Else" in f"{h.actor} {h.detail}"]


def test_a_request_straight_to_the_api_port_without_the_proxys_secret_gets_401(proxied):
    api = proxied.stack.api_url
    forged = {"X-Casetransfer-User": "kim.spo"}
    assert httpx.post(f"{api}/flow_runs/filter", json={"limit": 1}, timeout=30).status_code == 401
    assert httpx.post(f"{api}/flow_runs/filter", json={"limit": 1}, headers=forged, timeout=30).status_code == 401
    wrong = {**forged, "X-Casetransfer-Proxy-Secret": "a-guess-at-the-secret-long-enough"}
    assert httpx.get(f"{api}/csrf-token", params={"client": "x"}, headers=wrong, timeout=30).status_code == 401
    assert httpx.get(api.removesuffix("/api") + "/", timeout=30).status_code == 401  # the UI too
    assert httpx.get(f"{api}/health", timeout=30).status_code == 200
    with as_person(proxied, "kim.spo", password="not-her-password") as stranger:
        assert stranger.post("/flow_runs/filter", json={"limit": 1}).status_code == 401  # nginx's own refusal
    with as_person(proxied, "kim.spo") as kim:
        assert kim.post("/flow_runs/filter", json={"limit": 1}).status_code == 200
    secret = proxied.stack.proxy.secret_file.read_text().strip()
    assert secret not in (proxied.stack.proxy.folder / "nginx.conf").read_text()  # included from a 0600 file
    assert oct(proxied.stack.proxy.secret_file.stat().st_mode & 0o777) == "0o600"


def test_a_person_cannot_cancel_a_transfers_run_or_start_one_around_the_runs_check(proxied, waiting):
    from prefect_runs import engine

    run = transfer_views.status_of(waiting).flow_run_id or ""
    with as_person(proxied, "kim.spo") as kim:
        cancel = kim.post(f"/flow_runs/{run}/set_state", json={"state": {"type": "CANCELLING"}, "force": True})
        deployment = kim.get("/deployments/name/record-absence/record-absence").json()["id"]
        bulk = kim.post(f"/deployments/{deployment}/create_flow_run/bulk", json=[{"parameters": {"reference": waiting}}])
        assert kim.post("/flow_runs/paginate", json={"limit": 1}).status_code == 200  # the runs list still reads
    assert cancel.status_code == 403, cancel.text
    assert cancel.json()["detail"].startswith("Only operations staff may cancel a run or change its state.")
    assert bulk.status_code == 403, bulk.text
    assert engine.run_state(run)[0] not in ("CANCELLING", "CANCELLED")


def test_a_run_of_an_admin_deployment_is_checked_by_its_owners_and_records_the_person(proxied, waiting):
    parameters = {"reference": waiting, "missed_on": "2026-12-18", "acceptable": True, "recorded_by": "Sam", "role": "receiving_pp"}
    with as_person(proxied, "lee.spo") as lee:
        deployment = lee.get("/deployments/name/record-absence/record-absence").json()["id"]
        refused = lee.post(f"/deployments/{deployment}/create_flow_run", json={"parameters": parameters})
    assert refused.status_code == 403 and "N50GMS" in refused.json()["detail"]
    with as_person(proxied, "pat.receiver") as pat:
        created = pat.post(f"/deployments/{deployment}/create_flow_run", json={"parameters": parameters})
    assert created.status_code == 201, created.text
    assert created.json()["parameters"]["recorded_by"] == "Pat Receiver"


def test_the_head_of_the_receiving_pdu_settles_a_dispute_and_a_practitioner_cannot(proxied, waiting):
    from prefect_runs import engine

    if not transfer_views.step_state(waiting, "allocation").recorded:
        cli("record", waiting, "allocation", *ALLOCATION)
    cli("challenge", waiting, "--concern", "Risk to a known victim nearby", "--role", "receiving_spo", "--by", "Kim SPO")
    cli("record", waiting, "challenge-1", "--outcome", "uphold", "--reasons",
        "Risk of harm would increase and could not be managed at the new address", "--evidence", "Victim at 12 Oak Road",
        "--recorded-by", "Kim SPO")  # fmt: skip
    first_run = transfer_views.status_of(waiting).flow_run_id or ""
    wait_for(lambda: engine.run_state(first_run)[0] == "COMPLETED", what="the refused transfer's run to finish", timeout=240)
    cli("dispute", waiting, "--grounds", "The victim moved away in 2025", "--by", "Alex Senior")
    wait_for(paused_at(waiting, "dispute-1"), what="the dispute to wait for the head of the receiving PDU", timeout=240)
    settle = {"outcome": "overturn", "notes": "Victim no longer local", "recorded_by": "Morgan Head"}
    refused = resume(proxied, "pat.receiver", waiting, "dispute-1", settle)
    assert refused.status_code == 403
    assert "head of the receiving PDU" in refused.json()["detail"] and "N50GMS" in refused.json()["detail"]
    answered = resume(proxied, "morgan.head", waiting, "dispute-1", {**settle, "recorded_by": "Pat Receiver"})
    assert answered.status_code in (200, 201) and answered.json()["status"] == "ACCEPT", answered.text
    recorded = wait_for(lambda: (s := transfer_views.step_state(waiting, "dispute-1")).recorded and s, what="the dispute's decision")
    assert recorded.recorded_by == "Morgan Head"
    assert transfer_views.status_of(waiting).challenges[0].dispute_status == "overturned"

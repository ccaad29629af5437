"""The case-transfer flow's sequential shape (1) for real: a Prefect server, the deployments from
prefect.yaml, a process worker, suspend and resume through the API, and the CLI as operations
staff use it. Transfers raised before the concurrent shape finish on this one, in the same flow
(chosen by the NSI's shape version), so it is tested as long as such transfers may be open.
tests/integration/test_concurrent_flow.py tests the concurrent shape new transfers follow."""

from __future__ import annotations

import pytest
import yaml
from conftest import demo_form
from support.cli import cli, cli_process
from support.transfers import STEPS, raise_form, waiting_at
from support.waits import kill_worker_and_its_runs, prefect_api, resume_form, state_of, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _sequential_shape(sequential_shape: None) -> None:
    """Every transfer in this module is raised under the sequential shape (the CLI passes the
    pinned shape to its run's environment too)."""


def assert_recorded_exactly_once(reference: str) -> None:
    view = transfer_views.status_of(reference)
    codes = [a.code for a in view.actions]
    assert len(codes) == len(set(codes))
    events = [(h.event, h.detail) for h in view.history]
    assert len(events) == len(set(events)), events
    steps = [h.event for h in view.history if h.event in dict(STEPS)]
    assert steps == [s for s, _ in STEPS][: len(steps)]


def test_a_transfer_raised_by_the_cli_runs_to_completed_through_every_step(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="A100001")
    flow_run_id = transfer_views.status_of(reference).flow_run_id
    assert flow_run_id
    for step, args in STEPS:
        wait_for(waiting_at(reference, step), what=f"{reference} to wait at {step}")
        out = cli("record", reference, step, *args).stdout
        assert f"{step} recorded" in out
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the flow run to complete")
    view = transfer_views.status_of(reference)
    assert view.status == "completed" and view.responsible_officer == "Pat Receiver"
    assert_recorded_exactly_once(reference)
    status = cli("status", reference).stdout
    assert "completed" in status and "Allocate to a receiving" in status


def test_the_resume_form_shows_the_step_fields_and_the_nsi(prefect_stack, tmp_path):
    from prefect.client.orchestration import get_client

    reference = raise_form(tmp_path, crn="A100002")
    wait_for(waiting_at(reference, "allocation"), what="allocation")
    flow_run_id = transfer_views.status_of(reference).flow_run_id
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        schema = wait_for(lambda: resume_form(client, flow_run_id, "allocation-0"), what="the form schema")
    assert {"practitioner", "team_code", "recorded_by"} <= set(schema["properties"])
    assert reference in schema.get("description", "")


def test_a_weak_refusal_answered_in_the_ui_is_rejected_and_asked_again(prefect_stack, tmp_path):
    """The UI's Resume form skips the CLI's checks: the flow itself must reject the refusal."""
    from prefect_runs import engine

    reference = raise_form(tmp_path, crn="A100003")
    for step, args in STEPS[:5]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(waiting_at(reference, "decision"), what="decision")
    flow_run_id = transfer_views.status_of(reference).flow_run_id
    with prefect_api(prefect_stack):
        engine.wait_until_paused(flow_run_id)
        engine.resume(
            flow_run_id, {"recorded_by": "Kim SPO", "outcome": "refuse", "reasons": ["No local connection"], "evidence": ""}
        )
    wait_for(lambda: transfer_views.rejected_attempts(reference, "decision") == 1, what="the refusal to be rejected")
    wait_for(waiting_at(reference, "decision"), what="decision again")
    from prefect.client.orchestration import get_client

    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        schema = wait_for(lambda: resume_form(client, flow_run_id, "decision-1"), what="the second decision form")
    assert "not enough by themselves" in schema["description"]
    history = transfer_views.status_of(reference).history
    assert [h.event for h in history].count("answer rejected") == 1
    cli("record", reference, "decision", "--outcome", "accept", "--recorded-by", "Kim SPO")
    wait_for(waiting_at(reference, "completion"), what="completion")


def test_the_ui_run_form_raises_a_transfer_too(prefect_stack):
    from prefect_runs import engine

    with prefect_api(prefect_stack):
        flow_run_id = engine.start_run("case-transfer/case-transfer", {"form": demo_form(crn="A100004")})
    reference = wait_for(
        lambda: next((r for r, f in transfer_views.open_flow_runs() if f == flow_run_id), None), what="the flow to raise the NSI"
    )
    # A run raised from the UI registers its own NSI under the current shape: the concurrent one.
    wait_for(lambda: any(t.task == "allocation" and t.flow_run_id for t in transfer_views.status_of(reference).tasks),
             what="the allocation task to open")  # fmt: skip
    assert transfer_views.status_of(reference).crn == "A100004" and transfer_views.shape_of(reference) == 2
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")


def test_withdrawal_stops_the_waiting_run(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="A100005")
    wait_for(waiting_at(reference, "allocation"), what="allocation")
    cli("withdraw", reference, "--reason", "Moving plans fell through", "--by", "Sam")
    flow_run_id = transfer_views.status_of(reference).flow_run_id
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "CANCELLED", what="the run to be cancelled")
    assert transfer_views.status_of(reference).status == "withdrawn"
    late = cli("record", reference, "allocation", "--practitioner", "P", "--team-code", "N50CAD", check=False)
    assert late.returncode == 2 and "withdrawn" in late.stderr


def test_bad_step_input_exits_2_naming_the_field_and_changes_nothing(prefect_stack, tmp_path):
    reference = raise_form(tmp_path, crn="A100006")
    wait_for(waiting_at(reference, "allocation"), what="allocation")
    before = transfer_views.status_of(reference)
    bad = cli("record", reference, "allocation", "--practitioner", "Pat", "--team-code", "N07515", check=False)
    assert bad.returncode == 2 and "team_code" in bad.stderr
    missing = cli("record", reference, "allocation", "--team-code", "N50CAD", check=False)
    assert missing.returncode == 2 and "practitioner" in missing.stderr
    wrong_step = cli("record", reference, "decision", "--outcome", "accept", check=False)
    assert wrong_step.returncode == 2 and "waiting for allocation" in wrong_step.stderr
    after = transfer_views.status_of(reference)
    assert (after.status, len(after.history), after.actions) == (before.status, len(before.history), before.actions)


def test_a_bad_form_exits_2_naming_the_field_and_stores_nothing(prefect_stack, tmp_path):
    before = len(transfer_views.open_flow_runs())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(demo_form(crn="nope", rosh="Huge")))
    result = cli_process("raise", str(path), check=False)  # the installed command, as a process of its own
    assert result.returncode == 2
    assert "crn:" in result.stderr and "rosh:" in result.stderr
    assert len(transfer_views.open_flow_runs()) == before


def test_a_worker_killed_mid_step_recovers_and_stores_everything_exactly_once(prefect_stack, tmp_path):
    from services import raise_transfer
    from tasks.domain.form import parse_form

    with prefect_api(prefect_stack):
        # this run holds each step's task for 4 s after committing, so the kill lands mid-step
        reference, flow_run_id = raise_transfer(
            parse_form(demo_form(crn="A100007")), job_variables={"env": {"CASETRANSFER_FAULT_DELAY_SECONDS": "4"}}
        )
    for step, args in STEPS[:2]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(waiting_at(reference, "police_checks"), what="police checks")
    cli("record", reference, "police_checks", *dict(STEPS)["police_checks"], "--no-wait")
    wait_for(lambda: "police_checks" in transfer_views.recorded_steps(reference), what="the step to commit")
    kill_worker_and_its_runs(prefect_stack, flow_run_id)
    assert state_of(prefect_stack, flow_run_id) == "RUNNING"  # the server cannot know the process died
    prefect_stack.start_worker()
    assert reference in cli("recover", "--stale-after", "0").stdout
    for step, args in STEPS[3:]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="completion")
    assert_recorded_exactly_once(reference)
    assert transfer_views.status_of(reference).status == "completed"


def test_a_transfer_suspended_under_the_sequential_shape_finishes_on_it_after_the_upgrade(prefect_stack, tmp_path, monkeypatch):
    """Raised and suspended under shape 1; then the setting that pinned it goes (as after an
    upgrade): the old transfer still finishes step after step, each step recorded once, while a
    transfer raised now follows the concurrent shape."""
    from tasks.settings import reset_settings

    reference = raise_form(tmp_path, crn="A100009")
    for step, args in STEPS[:2]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    wait_for(waiting_at(reference, "police_checks"), what="police checks")
    monkeypatch.delenv("CASETRANSFER_SHAPE_VERSION")
    reset_settings()
    new = raise_form(tmp_path, crn="A100010")
    assert transfer_views.shape_of(new) == 2 and transfer_views.shape_of(reference) == 1
    for step, args in STEPS[2:]:
        wait_for(waiting_at(reference, step), what=step)
        cli("record", reference, step, *args)
    flow_run_id = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: state_of(prefect_stack, flow_run_id) == "COMPLETED", what="the old transfer's run to complete")
    assert transfer_views.status_of(reference).status == "completed"
    assert_recorded_exactly_once(reference)
    cli("withdraw", new, "--reason", "test finished", "--by", "Sam")

"""Moving again on a real Prefect server (issue 25, item 3): a raise that supersedes an open
transfer stops the first transfer's run and its waiting task runs, as a withdrawal does, from the
command line and from the UI's raise-transfer Run form (the form's `supersedes` field)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import demo_form
from support.cli import cli
from support.transfers import raise_form
from support.waits import prefect_api, state_of, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect


def allocation_run(reference: str) -> str:
    """The run of the open allocation task, once it has started."""
    return wait_for(
        lambda: next((t.flow_run_id for t in transfer_views.status_of(reference).tasks if t.task == "allocation" and t.flow_run_id), None),
        what=f"{reference}'s allocation task to open",
    )


def test_a_raise_with_supersedes_stops_the_first_transfers_runs_and_links_both(prefect_stack, tmp_path: Path):
    first = raise_form(tmp_path, crn="S100001")
    first_task = allocation_run(first)
    first_run = transfer_views.status_of(first).flow_run_id
    refused = cli("raise", str(tmp_path / "S100001.yaml"), check=False)
    assert refused.returncode == 2 and f"casetransfer amend {first}" in refused.stderr
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(demo_form(crn="S100001", proposed_postcode="LS1 1AA", reason_for_move="Changed their mind")))
    second = cli("raise", str(path), "--supersedes", first).stdout.strip()
    for run in (first_run, first_task):
        wait_for(lambda run=run: state_of(prefect_stack, run) == "CANCELLED", what=f"{run} to be cancelled")
    old, new = transfer_views.status_of(first), transfer_views.status_of(second)
    assert (old.status, old.superseded_by, new.supersedes) == ("superseded", second, first)
    assert allocation_run(second) != first_task
    cli("withdraw", second, "--reason", "test finished", "--by", "Sam")


def test_the_ui_raise_transfer_form_carries_supersedes(prefect_stack, tmp_path: Path):
    from prefect_runs import engine

    first = raise_form(tmp_path, crn="S100002")
    first_task = allocation_run(first)
    with prefect_api(prefect_stack):
        engine.start_run("raise-transfer/raise-transfer", {"form": demo_form(crn="S100002", supersedes=first)})
    second = wait_for(lambda: transfer_views.status_of(first).superseded_by, what=f"{first} to be superseded")
    wait_for(lambda: state_of(prefect_stack, first_task) == "CANCELLED", what="the first allocation task's run to be cancelled")
    assert transfer_views.status_of(second).supersedes == first
    cli("withdraw", second, "--reason", "test finished", "--by", "Sam")

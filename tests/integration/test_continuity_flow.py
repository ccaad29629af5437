"""Conditions and continuity on a real Prefect server (issue 26): an address raised inside an
exclusion zone opens its check at once, the first appointment is a task of its own with its own
form, and a missed appointment recorded by the receiving practitioner before completion opens the
transferring practitioner's enforcement task in a run of its own; raised, recorded and read
through the CLI as people use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import cli
from support.transfers import ALLOCATION, RAISED, raise_form
from support.waits import prefect_api, state_of, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect


def open_task(reference: str, task: str) -> transfer_views.TaskView | None:
    return next((t for t in transfer_views.status_of(reference).tasks if t.task == task and t.flow_run_id), None)


def test_a_missed_appointment_opens_the_transferring_practitioners_enforcement_task(prefect_stack, tmp_path: Path) -> None:
    # Raised to M14 5TG with an exclusion zone around it: flagged, and the check waits for the
    # transferring practitioner in a run of its own before anything else is done.
    reference = raise_form(tmp_path, crn="C260001", raised_on=RAISED, exclusion_zones=["M14 5"])
    check = wait_for(lambda: open_task(reference, "conditions_check"), what="the conditions check to open at raising")
    assert check.owner_role == "transferring_pp" and len(transfer_views.status_of(reference).flags) == 1
    assert "allocation recorded" in cli("record", reference, "allocation", *ALLOCATION).stdout
    wait_for(lambda: open_task(reference, "first_appointment"), what="the first appointment task to open")
    planned = cli("record", reference, "first_appointment", "--appointment-on", "2026-12-18", "--place", "Manchester South office",
                  "--with-whom", "Pat Receiver", "--communicated-on", "2026-12-16", "--recorded-by", "Sam Practitioner")  # fmt: skip
    assert "first_appointment recorded" in planned.stdout
    kept = wait_for(lambda: open_task(reference, "first_appointment_kept"), what="the kept task to open after the plan")
    assert kept.owner_role == "receiving_pp"

    out = cli("absence", reference, "--on", "2026-12-18", "--acceptable", "no", "--by", "Pat Receiver", "--notes", "Did not attend")
    assert "unacceptable absence" in out.stdout

    task = wait_for(lambda: open_task(reference, "enforcement_review"), what="the enforcement task to open in its own run")
    assert task.owner_role == "transferring_pp"
    done = cli("record", reference, "enforcement_review", "--recorded-by", "Sam Practitioner", "--notes", "Warning letter sent")
    assert "enforcement_review recorded" in done.stdout
    view = transfer_views.status_of(reference)
    assert next(a for a in view.actions if a.code == "enforcement_review").status == "done"
    assert [(c["kind"], c["acceptable"]) for c in view.contacts] == [("absence", False)]
    assert "Record of absences" in cli("status", reference).stdout
    # From the UI's Run form too; what was typed about it stays in the store, not in Prefect.
    from prefect.client.orchestration import get_client

    from prefect_runs import engine

    with prefect_api(prefect_stack):
        run_id = engine.start_run("record-absence/record-absence", {
            "reference": reference, "missed_on": "2026-12-21", "acceptable": True, "recorded_by": "Pat Receiver",
            "notes": "Phoned in sick"})  # fmt: skip
    wait_for(lambda: state_of(prefect_stack, run_id) == "COMPLETED", what="the record-absence run to finish")
    assert [c["acceptable"] for c in transfer_views.status_of(reference).contacts] == [False, True]
    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        kept = client.read_flow_run(run_id).parameters
    assert "notes" not in kept and kept["reference"] == reference
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")

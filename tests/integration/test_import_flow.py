"""Imported NSIs on a real Prefect stack (issue 13): after the import, each open NSI's flow run
starts with exactly the tasks still open, and the work done before the import is never asked for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli import cli
from support.waits import prefect_api, wait_for

import services
from tasks.demo.legacy_trackers import write_tracker
from tasks.domain import importer, transfer_views
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork

pytestmark = pytest.mark.prefect

ROW = {"name": "Imported Person", "nsi_type": "Transfer", "date_of_birth": dt.date(1980, 2, 3), "sentence_type": "CRO", "from": "Greenwich and Bexley",
       "to": "N50CAD", "notified_on": dt.date(2026, 12, 1), "move_on": dt.date(2026, 12, 1), "rosh": "Medium"}  # fmt: skip


def test_an_imported_transfer_runs_with_exactly_its_open_tasks_and_a_caretaking_row_waits_for_its_outcome(
    prefect_stack, tmp_path: Path
) -> None:
    path = write_tracker(
        tmp_path / "t.xlsx",
        [
            {**ROW, "crn": "F300001", "documents_on": "02/12/2026", "address_assessment_on": dt.date(2026, 12, 3)},
            {**ROW, "crn": "F300002", "nsi_type": "Caretaking"},
        ],
    )
    transfer, move = importer.import_tracker(path).created

    with prefect_api(prefect_stack):
        started = services.start_imported_runs(per_minute=600)
        assert services.start_imported_runs(per_minute=600) == []  # safe to repeat: each NSI has its run

    assert sorted(started) == sorted([transfer, move])
    # The legacy tracker has no first appointment column: allocated already, it is asked for (issue 26).
    expected = {
        "police_checks", "safeguarding_checks", "handover", "oasys_reassessment", "plan_review", "court_application",
        "first_appointment",
    }  # fmt: skip

    def opened() -> set[str]:
        return {t.task for t in transfer_views.status_of(transfer).tasks if t.flow_run_id}

    assert wait_for(lambda: opened() == expected and opened(), timeout=240, what=f"{transfer}'s open tasks", show=opened) == expected
    assert not {"allocation", "documents", "address_assessment"} & {t.task for t in transfer_views.status_of(transfer).tasks}
    wait_for(lambda: transfer_views.nsi_status(move)[1] == "outcome", timeout=240, what=f"{move} waiting for its outcome")


def test_operations_staff_import_a_file_from_the_import_folder_with_the_deployment(prefect_stack, tmp_path: Path) -> None:
    from prefect_runs import engine

    folder = tmp_path / "imports"
    write_tracker(folder / "region.xlsx", [{**ROW, "crn": "F300003"}, {**ROW, "crn": "bad"}])
    env = {"env": {"CASETRANSFER_IMPORT_DIR": str(folder)}}

    with prefect_api(prefect_stack):
        outside = engine.start_run("import-tracker/import-tracker", {"file_name": "../region.xlsx"}, job_variables=env)
        run = engine.start_run("import-tracker/import-tracker", {"file_name": "region.xlsx", "start_runs": False}, job_variables=env)
        assert engine.wait_until_final(run, timeout=240) == "Completed"
        assert engine.wait_until_final(outside, timeout=240) == "Failed"  # a path out of the folder is refused

    with UnitOfWork() as uow:
        stored = uow.session.execute(select(Nsi.crn, Nsi.imported_on).where(Nsi.crn.in_(["F300003", "BAD"]))).all()
    assert [(crn, on is not None) for crn, on in stored] == [("F300003", True)]
    assert (folder / "region.import-report.xlsx").exists()


def test_importing_the_file_again_starts_the_runs_an_interrupted_start_left_unstarted(
    prefect_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `casetransfer down` leaves them: the background start ends once the server is gone.
    for key, value in {**prefect_stack.env, "CASETRANSFER_IMPORT_DIR": str(tmp_path / "imports")}.items():
        monkeypatch.setenv(key, value)
    path = write_tracker(tmp_path / "t.xlsx", [{**ROW, "crn": "F300004"}])
    cli("import-tracker", str(path), "--no-start-runs")
    with UnitOfWork() as uow:
        reference = uow.session.scalars(select(Nsi.reference).where(Nsi.crn == "F300004")).one()
    assert transfer_views.status_of(reference).flow_run_id is None

    monkeypatch.setenv("PREFECT_API_URL", prefect_stack.api_url)
    again = cli("import-tracker", str(path)).stdout

    assert "0 NSIs created, 1 imported before (skipped)" in again
    assert "Starting their flow runs in the background" in again
    wait_for(lambda: transfer_views.status_of(reference).flow_run_id, timeout=120, what=f"{reference}'s flow run to start")

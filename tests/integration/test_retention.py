"""Retention: a finished transfer's flow runs leave Prefect after prefect_run_retention_days; the
store keeps its record. The store's rules on SQLite and PostgreSQL, then the prefect-retention
sweep against the real Prefect stack."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from uuid import UUID

import pytest
from conftest import TODAY, demo_form
from support.waits import prefect_api, wait_for

from tasks.domain import privacy, transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.settings import reset_settings


def raised(crn: str) -> str:
    return transfers.register_nsi(parse_form(demo_form(crn=crn, raised_on="2026-12-01")), f"key-{crn}", flow_run_id=f"run-{crn}")


def test_only_transfers_finished_longer_ago_than_retention_are_due_and_each_only_once(store_url):
    withdrawn, still_open = raised("R100001"), raised("R100002")
    transfers.withdraw(withdrawn, "No longer moving", "Kim SPO")  # closed today
    assert privacy.expired_transfers(TODAY, 30) == []  # closed today: kept for 30 days
    assert privacy.expired_transfers(TODAY + dt.timedelta(days=30), 30) == []
    (due,) = privacy.expired_transfers(TODAY + dt.timedelta(days=31), 30)
    assert due.reference == withdrawn and due.flow_run_ids[0] == "run-R100001"
    assert still_open not in [e.reference for e in privacy.expired_transfers(TODAY + dt.timedelta(days=400), 30)]
    privacy.mark_runs_deleted(withdrawn, 3)
    assert privacy.expired_transfers(TODAY + dt.timedelta(days=31), 30) == []  # swept once
    view = transfer_views.status_of(withdrawn)
    assert view.status == "withdrawn" and view.name  # the store keeps the record
    assert [h.detail for h in view.history if h.event == privacy.RUNS_DELETED] == ["3 Prefect flow runs deleted"]


def test_a_negative_retention_is_refused_naming_the_setting(store_url):
    with pytest.raises(privacy.RetentionError, match="prefect_run_retention_days"):
        privacy.expired_transfers(TODAY, -1)


def test_run_names_match_their_reference_as_a_whole_token():
    assert privacy.belongs_to("police-checks-CT000001", "CT000001")
    assert privacy.belongs_to("action-CT000001-documents", "CT000001")
    assert not privacy.belongs_to("transfer-CT0000012", "CT000001")


@pytest.fixture
def own_store(migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store of this test's own on the shared stack (its runs are told the URL): the sweep finds
    only this test's transfers, never what other tests left closed in the stack's store."""
    path = tmp_path / "store.sqlite"
    shutil.copyfile(migrated_sqlite, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", url)
    reset_settings()
    return url


@pytest.mark.prefect
def test_the_sweep_deletes_a_withdrawn_transfers_runs_and_artifacts_from_prefect_and_keeps_the_store(
    prefect_stack, own_store, tmp_path
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.exceptions import ObjectNotFound

    import services
    from flows.retention import sweep
    from prefect_runs import engine

    with prefect_api(prefect_stack):
        reference, run_id = services.raise_transfer(
            parse_form(demo_form(crn="R100010", raised_on="2026-12-14")), {"env": {"CASETRANSFER_DATABASE_URL": own_store}}
        )
        key = f"action-list-{reference.lower()}"
        with get_client(sync_client=True) as client:
            wait_for(lambda: client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))),
                     timeout=120, what="the Action List")  # fmt: skip
        task_run = wait_for(lambda: next((t.flow_run_id for t in transfer_views.status_of(reference).tasks if t.flow_run_id), None),
                            timeout=120, what="the allocation task's run")  # fmt: skip
        services.withdraw(reference, "No longer moving", "Kim SPO")
        wait_for(lambda: engine.run_state(run_id)[0] in ("CANCELLED", "COMPLETED"), what="the run to stop")
        assert sweep(today=TODAY, retention_days=0) == {}  # closed today: not yet past retention
        done = sweep(today=TODAY + dt.timedelta(days=1), retention_days=0)
        assert done[reference] >= 2
        with get_client(sync_client=True) as client:
            for gone in (run_id, task_run):
                with pytest.raises(ObjectNotFound):
                    client.read_flow_run(UUID(gone))
            assert client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))) == []
        assert sweep(today=TODAY + dt.timedelta(days=1), retention_days=0) == {}  # nothing twice
    assert transfer_views.status_of(reference).status == "withdrawn"

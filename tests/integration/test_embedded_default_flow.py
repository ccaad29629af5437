"""The embedded default, as `scripts/up.sh` starts it: Prefect's database and the store on SQLite.
Every other Prefect test runs on PostgreSQL stacks (tests/conftest.py says why); this one keeps
the default a person gets on their own machine working end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.cli import cli
from support.transfers import AFTER_ALLOCATION, ALLOCATION, COMPLETION, RAISED, raise_form
from support.waits import state_of, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect


def test_on_the_embedded_default_a_transfer_runs_from_raise_to_completed(
    embedded_default_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = embedded_default_stack
    for key, value in {**stack.env, "PREFECT_API_URL": stack.api_url, "PREFECT_HOME": str(stack.home)}.items():
        monkeypatch.setenv(key, value)
    assert stack.env["CASETRANSFER_DATABASE_URL"].startswith("sqlite:")
    assert not stack.server_env  # Prefect's own default: SQLite under PREFECT_HOME
    reference = raise_form(tmp_path, crn="E100001", raised_on=RAISED)
    assert "allocation recorded" in cli("record", reference, "allocation", *ALLOCATION).stdout
    for task, answer in AFTER_ALLOCATION.items():
        assert f"{task} recorded" in cli("record", reference, task, *answer).stdout
    assert "completion recorded" in cli("record", reference, "completion", *COMPLETION).stdout
    flow_run_id = transfer_views.status_of(reference).flow_run_id or ""
    wait_for(lambda: state_of(stack, flow_run_id) == "COMPLETED", what="the transfer's run to complete")
    assert transfer_views.status_of(reference).status == "completed"
    assert (stack.home / "prefect.db").exists()

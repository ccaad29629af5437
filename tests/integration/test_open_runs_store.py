"""Which runs recover-transfers looks after (transfer_views.open_flow_runs), on the store alone."""

from __future__ import annotations

from conftest import demo_form
from sqlalchemy import select

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form
from tasks.store.models import Nsi, WaitingTask
from tasks.store.unit_of_work import UnitOfWork


def _completed(key: str, task_status: str) -> str:
    reference = transfers.register_nsi(parse_form(demo_form()), key)
    with UnitOfWork() as uow:
        nsi = uow.session.scalars(select(Nsi).where(Nsi.reference == reference)).one()
        nsi.status, nsi.flow_run_id = "completed", f"00000000-0000-0000-0000-{key:0>12}"
        uow.session.add(WaitingTask(nsi_id=nsi.id, task="plan_review", owner_role="receiving_pp", status=task_status))
        uow.commit()
    return reference


def test_a_completed_transfer_whose_tasks_after_the_move_still_wait_keeps_its_run_looked_after(store_url: str):
    reference = _completed("1", "open")
    assert (reference, "00000000-0000-0000-0000-000000000001") in transfer_views.open_flow_runs()


def test_a_completed_transfer_with_nothing_left_waiting_is_not_looked_after(store_url: str):
    reference = _completed("2", "done")
    assert reference not in {r for r, _ in transfer_views.open_flow_runs()}

"""temporary-move: one flow run per Temporary Move NSI, suspended at each human step.

The receiving team names a support contact; then the supporting period, while the
transferring practitioner stays responsible (status "supporting"); then the outcome: the
person returned (the case is reviewed), the move became a Case Transfer (a case-transfer run
starts with the same form, linked to this NSI), or it ended. Every side effect is keyed, so a
resumed or recovered run that starts again from the top does nothing twice.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from flows.case_transfer import STORE, drive_steps, raise_once, run_name_for
from flows.steps import TEMPORARY_MOVE_STEPS
from prefect_runs import engine
from tasks.domain import conversion, transfers
from tasks.domain.form import TransferForm
from tasks.domain.temporary_moves import SUPPORTING, as_temporary_move
from tasks.settings import get_settings


def move_run_name() -> str:
    return run_name_for("move")


@task(name="register-case-transfer", **STORE)
def register_case_transfer(reference: str) -> dict:
    """The Case Transfer this move becomes, registered once (key convert-<reference>)."""
    c = conversion.prepare(reference)
    # References only: a task's return value is persisted as its result.
    return {"new_reference": c.new_reference, "request_key": c.request_key, "profile": c.profile, "actor": c.actor}


@task(name="start-case-transfer", **STORE)
def start_case_transfer(c: dict) -> str:
    """Start its case-transfer run; the same idempotency key on a re-run returns the same run.
    The store already holds the new NSI: the run takes its reference, never the form."""
    run_id = engine.start_run(
        get_settings().case_transfer_deployment,
        {"reference": c["new_reference"]},
        f"transfer-{c['new_reference']}",
        # The Case Transfer follows the policy its Temporary Move followed.
        job_variables={"env": {"CASETRANSFER_PROFILE": c["profile"]}},
        idempotency_key=c["request_key"],
        tags=[c["new_reference"]],
    )
    transfers.set_flow_run(c["new_reference"], run_id)
    return run_id


@task(name="close-converted", **STORE)
def close_converted(reference: str, new_reference: str, actor: str) -> str:
    return conversion.finish(reference, new_reference, actor, flow_run_id=str(flow_run.id))


@flow(name="temporary-move", flow_run_name=move_run_name, persist_result=True, log_prints=True)
def temporary_move(form: TransferForm | None = None, request_key: str | None = None, reference: str | None = None) -> str:
    """Follow a Temporary Move: support contact, supporting period, outcome.

    Args:
        form: Leave empty (raise with the raise-transfer deployment). A form given here is
            stored, then removed from this run.
        request_key: Leave empty. Set when the NSI is already stored (imported from a
            region's legacy tracker), so the run picks that NSI up.
        reference: The NSI, e.g. TM000001, already stored by raise-transfer or the CLI.
    """
    if reference is None:
        if form is None:
            raise ValueError("reference: give the NSI's reference (raise a move with raise-transfer)")
        reference = raise_once(as_temporary_move(form), request_key or str(flow_run.id), prefix="move")
    status = drive_steps(reference, TEMPORARY_MOVE_STEPS, waiting_status={"outcome": SUPPORTING})
    if conversion.pending_conversion(reference):
        c = register_case_transfer(reference)
        run_id = start_case_transfer(c)
        status = close_converted(reference, c["new_reference"], c["actor"])
        get_run_logger().info("%s converted to Case Transfer %s (flow run %s)", reference, c["new_reference"], run_id)
    return status

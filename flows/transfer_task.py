"""transfer-task: one waiting task of a Case Transfer (police checks, the address assessment, a
challenge about risk...) as a flow run of its own, suspended with its own typed form, so the
Prefect UI shows exactly what waits and for whom. Started unlinked by the transfer's run
(a linked subflow cannot be suspended) and tagged with the transfer's reference; when its answer
is recorded it wakes the transfer's run.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.case_transfer import recorded_words, wait_for_answer
from prefect_runs import engine
from tasks.domain import steps as registry
from tasks.domain import transfer_views, transfers


def task_run_name() -> str:
    params = flow_run.parameters
    return f"{str(params['task']).replace('_', '-')}-{params['reference']}"


@flow(name="transfer-task", flow_run_name=task_run_name, persist_result=True, log_prints=True)
def transfer_task(reference: str, task: str, round: int = 1) -> str | State:
    """Wait for one task of a transfer to be answered, record it, and wake the transfer.

    Args:
        reference: The NSI, e.g. CT000001.
        task: The task: a step (police_checks...), an action code (documents...), challenge-N or dispute-N.
        round: 1, or more when the task reopened (a refusal overturned on dispute).
    """
    logger = get_run_logger()
    found = transfer_views.task_round(reference, task)
    if found is None or found[0] != round or found[1] in ("cancelled", "superseded"):
        logger.info("%s: %s is no longer open", reference, task)
        return "cancelled"
    if task not in transfer_views.recorded_steps(reference):
        wait_for_answer(reference, task, registry.wait_key(task, round), sequential=False)
    else:  # resumed again after its answer was recorded: whoever sent this one reads why it was not
        logger.info("%s", recorded_words(reference, task))
    if engine.wake_transfer(reference):
        transfers.task_done(reference, task, round)
    else:
        logger.warning("%s: the transfer's run did not take the wake-up in time; recover-transfers sends it again", reference)
    status = transfer_views.nsi_status(reference)[0]
    if not transfer_views.step_state(reference, task).recorded:
        return status
    # The state's message is what the UI shows at the top of the run: who answered, and when.
    return Completed(message=recorded_words(reference, task), data=status)

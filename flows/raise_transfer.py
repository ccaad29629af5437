"""raise-transfer: the UI's Run form for raising a Case Transfer or a Temporary Move.

The form is what the person's details are typed into, so it must not stay in Prefect: the run
stores the NSI and starts its run (which takes the reference only, through the same path as the
CLI: services.raise_transfer), then replaces its own parameters with the reference. A form the store
refuses is removed as well; the run fails with the fields and rules, which hold no details.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

import services
from flows.case_transfer import _forwarded_env
from prefect_runs import engine
from tasks.domain.form import TransferForm


@flow(name="raise-transfer", flow_run_name="raise-transfer")
def raise_transfer(form: TransferForm | None = None, reference: str | None = None) -> str:
    """Raise a Case Transfer or a Temporary Move (nsi_type) from its form; returns the NSI reference.

    Args:
        form: The transfer form. Stored in casetransfer's own database; this run keeps no copy.
        reference: Leave empty. Set by the run itself once the NSI is stored, in place of the form.
    """
    run_id = str(flow_run.id)
    if form is None:
        if reference:  # a re-run of a raise already done: its form was removed from this run
            return reference
        raise ValueError("form: give the transfer form")
    try:
        # The transfer's run reaches the store as this run does (the forwarded settings).
        reference, transfer_run = services.raise_transfer(form, _forwarded_env())
    except BaseException:
        engine.forget_parameters(run_id, {})
        raise
    engine.forget_parameters(run_id, {"reference": reference}, name=f"raise-{reference}", tags=[reference])
    get_run_logger().info("%s raised by %s; its run is %s", reference, form.raised_by, transfer_run)
    return reference

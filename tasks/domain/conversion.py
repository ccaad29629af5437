"""A Temporary Move converted to a Case Transfer, in the store.

Three idempotent steps, so a flow run that dies between them is safely run again:
`prepare` registers the new Case Transfer (key `convert-<reference>`, linked by
parent_reference), the flow starts its case-transfer run under the same key, and `finish`
closes the Temporary Move as converted. Until `finish`, the move is "converting" and stays
open, so recovery picks its run up again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tasks.domain import temporary_moves, transfers
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.transfer import TransferWork, today
from tasks.store.models import Nsi


class NotConverting(ValueError):
    pass


@dataclass(frozen=True)
class Conversion:
    reference: str  # the Temporary Move
    new_reference: str  # the Case Transfer
    request_key: str  # the new NSI's request key, also the idempotency key of its flow run
    profile: str
    crn: str
    form: dict[str, Any]  # the Case Transfer's form, as the case-transfer flow takes it
    actor: str


def request_key_for(reference: str) -> str:
    return f"convert-{reference}"


def pending_conversion(reference: str, url: str | None = None) -> bool:
    """The outcome says converted and the move has not been closed as converted yet."""
    with TransferWork(url) as uow:
        move = uow.transfers.get(reference)
        nsi, step = move.nsi, move.recorded("outcome")
        return step is not None and step.answer.get("outcome") == "converted" and nsi.status == temporary_moves.CONVERTING


def prepare(reference: str, url: str | None = None) -> Conversion:
    """Register the Case Transfer a converted Temporary Move becomes (once, whatever the re-runs)."""
    with TransferWork(url) as uow:
        move = uow.transfers.get(reference)
        nsi = move.nsi
        if nsi.nsi_type != NsiType.temporary_move.value:
            raise NotConverting(f"{nsi.reference} is a {nsi.nsi_type}, not a Temporary Move")
        step = move.recorded("outcome")
        if step is None or step.answer.get("outcome") != "converted":
            raise NotConverting(f"{nsi.reference} has no 'converted' outcome recorded")
        # The outcome's day as recorded (apply_step fills it in): a re-run on a later day builds the same form.
        on = dt.date.fromisoformat(str(step.answer["on"]))
        form: TransferForm = temporary_moves.conversion_form(nsi.form, on, step.recorded_by, nsi.receiving_pdu_code)
        placement = transfers.Placement(nsi.receiving_pdu_code, nsi.distance_km)
        reference, profile, crn, actor = nsi.reference, nsi.profile, nsi.crn, step.recorded_by
    key = request_key_for(reference)
    new_reference = transfers.register_nsi(
        form, key, placement=placement, actor=actor, url=url, profile=profile, parent_reference=reference
    )
    return Conversion(reference, new_reference, key, profile, crn, form.model_dump(mode="json"), actor)


def finish(reference: str, new_reference: str, actor: str, flow_run_id: str | None = None, url: str | None = None) -> str:
    """Close the Temporary Move as converted, naming the Case Transfer in its history."""
    with TransferWork(url) as uow:
        move = uow.transfers.get(reference)
        if move.nsi.status == temporary_moves.CONVERTING:
            move.close(temporary_moves.OUTCOMES["converted"], today())
        new = uow.session.scalar(select(Nsi).where(Nsi.reference == new_reference))
        run = f"; its case-transfer flow run is {new.flow_run_id}" if new is not None and new.flow_run_id else ""
        move.note("converted", "converted", f"converted to Case Transfer {new_reference}{run}", actor, flow_run_id)
        uow.commit()
        return move.nsi.status

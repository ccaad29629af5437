"""The forms of the actions whose answer says more than "done" (issue 26): the planned first
appointment in the receiving area, and whether it was kept. The step registry
(tasks/domain/steps.py spec_for) gives these to their tasks instead of the generic ActionDone;
each carries what every answer carries (who, the done date, notes)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, ValidationInfo, field_validator

from tasks.domain.step_answer import StepAnswer


class ActionAnswer(StepAnswer):
    notes: str = Field("", max_length=4000)

    def words(self) -> str:
        """What the history adds after "<title>: done"."""
        return f". {self.notes}" if self.notes else ""


class FirstAppointment(ActionAnswer):
    """Transferring practitioner: the planned first appointment in the receiving area, and the day
    the person was told of it (002 App. 2: made and clearly communicated)."""

    appointment_on: dt.date = Field(..., description="The day of the first appointment in the receiving area")
    place: str = Field(..., min_length=1, max_length=200, description="Where: the office or place")
    with_whom: str = Field(..., min_length=1, max_length=200, description="With whom: usually the receiving practitioner")
    communicated_on: dt.date | None = Field(None, description="The day the person was told (the done date; or give done_on)")

    def words(self) -> str:
        return f": {self.appointment_on.isoformat()} at {self.place} with {self.with_whom}, communicated" + super().words()


class FirstAppointmentKept(ActionAnswer):
    """Receiving practitioner: was the first appointment kept? A missed one is recorded as an
    absence: it goes to the transferring practitioner, who owns enforcement until completion."""

    kept: bool = Field(..., description="Did the person attend the first appointment?")
    acceptable: bool | None = Field(None, validate_default=True, description="When not kept: was the absence acceptable?")

    @field_validator("acceptable")
    @classmethod
    def _acceptable_only_when_missed(cls, v: bool | None, info: ValidationInfo) -> bool | None:
        kept = info.data.get("kept")
        if kept is True and v is not None:
            raise ValueError("only for a first appointment that was not kept")
        if kept is False and v is None:
            raise ValueError("say whether the absence was acceptable (true or false)")
        return v

    def words(self) -> str:
        if self.kept:
            return ": kept" + super().words()
        return f": not kept ({'acceptable' if self.acceptable else 'unacceptable'} absence)" + super().words()


# Action code -> its form and the field that dates the work.
ACTION_FORMS: dict[str, tuple[type[ActionAnswer], str | None]] = {
    "first_appointment": (FirstAppointment, "communicated_on"),
    "first_appointment_kept": (FirstAppointmentKept, None),
}

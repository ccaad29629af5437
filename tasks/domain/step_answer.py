"""What every answer to a waiting step carries. Its own module so the forms of one service
(tasks/domain/youth_steps.py) and the step registry (tasks/domain/steps.py) share it without a cycle."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class StepAnswer(BaseModel):
    """What every answer carries: who gives it, and the day the work was done."""

    model_config = ConfigDict(extra="forbid")

    recorded_by: str = Field(..., min_length=1, max_length=200, description="Your name: who is answering this step")
    done_on: dt.date | None = Field(
        None,
        description="The day the work was done (YYYY-MM-DD); leave empty for today. Not in the future, not before the NSI was raised",
    )

"""The typed forms the waiting steps ask for, as Prefect RunInput: what the UI's Resume form shows.

The fields, owners and rules live in the step registry (tasks/domain/steps.py); this module only wraps
each form so Prefect can save its schema and load an answer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prefect.input import RunInput

from tasks.domain import steps as registry
from tasks.domain.policy import Policy, get_policy
from tasks.settings import get_settings

StepForm = RunInput


@lru_cache(maxsize=64)
def run_input(form: type[registry.StepAnswer]) -> type[RunInput]:
    """The registry's form as a RunInput subclass, same fields, same docstring (the form's help)."""
    return type(form.__name__, (form, RunInput), {"__doc__": form.__doc__, "__module__": __name__})


def form_for(task: str, policy: Policy | None = None) -> type[RunInput]:
    return run_input(registry.spec_for(task, policy).form)


CASE_TRANSFER_STEPS: dict[str, type[RunInput]] = {s: form_for(s) for s in registry.SEQUENTIAL_STEPS}
TEMPORARY_MOVE_STEPS: dict[str, type[RunInput]] = {s: form_for(s) for s in registry.TEMPORARY_MOVE_STEPS}
STEP_FORMS: dict[str, type[RunInput]] = {**CASE_TRANSFER_STEPS, **TEMPORARY_MOVE_STEPS}

# The registry's forms by name, for code that checks an answer's kind.
Allocation = STEP_FORMS["allocation"]
Decision = STEP_FORMS["decision"]


def validate_step(step: str, data: dict[str, Any], policy: Policy | None = None, raised_on: Any = None) -> registry.StepAnswer:
    """Validate an answer as the flow will; FormError names every bad field and its rule.
    `policy` is the NSI's (its profile's rules); the process's own when not given."""
    policy = policy or get_policy()
    return registry.validate_answer(step, data, policy, get_settings().current_date(), raised_on)

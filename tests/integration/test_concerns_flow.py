"""Issue 26 for real: a Prefect server, the deployments, a process worker and the CLI as people use
it. Police checks that come back with concerns open the receiving SPO's decision as a task of its
own; completion is refused, naming that task, on the command line and in the Action List the UI
shows, until the SPO answers; the documents are recorded two items at a time on each side."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import cli
from support.transfers import AFTER_ALLOCATION, ALLOCATION, COMPLETION, RAISED
from support.transfers import raise_form as raise_any
from support.waits import prefect_api, resume_form, wait_for

from tasks.domain import transfer_views

pytestmark = pytest.mark.prefect


def open_tasks(reference: str) -> set[str]:
    return {t.task for t in transfer_views.status_of(reference).tasks if t.flow_run_id}


def action_list(stack, reference: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with prefect_api(stack), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"action-list-{reference.lower()}"])))
    return str(max(found, key=lambda a: a.created).data) if found else ""


def test_police_checks_with_concerns_hold_completion_until_the_spo_has_decided(prefect_stack, tmp_path: Path):
    reference = raise_any(tmp_path, crn="C260001", raised_on=RAISED)
    # The sending side records what it sent, two items at once; the rest stay asked for.
    sent = cli("record", reference, "documents", "--sent", "assessment,contact_log", "--recorded-by", "Sam Practitioner").stdout
    assert "documents sent in part" in sent and "still missing: the supervision plan, the copy of the order or licence" in sent
    assert "allocation recorded" in cli("record", reference, "allocation", *ALLOCATION).stdout
    wait_for(lambda: {"police_checks", "documents", "documents_sent"} <= open_tasks(reference), what="the tasks after allocation")
    police = ["--returned-on", "2026-12-16", "--concerns", "true", "--recorded-by", "Admin A"]
    assert "police_checks recorded" in cli("record", reference, "police_checks", *police).stdout
    wait_for(lambda: "concerns_decision" in open_tasks(reference), what="the SPO's decision on the concerns to open")
    received = cli("record", reference, "documents", "--received", "assessment,order_copy", "--recorded-by", "Admin A").stdout
    assert "still missing: the supervision plan, the contact log" in received
    # The task asks again in the UI, its form saying what is still to come.
    documents_run = next(t.flow_run_id for t in transfer_views.status_of(reference).tasks if t.task == "documents")
    from prefect.client.orchestration import get_client

    with prefect_api(prefect_stack), get_client(sync_client=True) as client:
        form = wait_for(lambda: resume_form(client, documents_run or "", "documents-r1-1"), what="the documents form asked again")
    assert "Still to be received: the supervision plan, the contact log." in form["description"]
    assert "received" in form["properties"] and "documents received in part" in form["description"]
    for task in ("address_assessment", "safeguarding_checks", "handover"):
        cli("record", reference, task, *AFTER_ALLOCATION[task])
    cli("record", reference, "documents", "--recorded-by", "Admin A")  # no items named: everything still missing arrived
    wait_for(lambda: "documents_sent" not in open_tasks(reference), what="the sending task to close: all received")

    refused = cli("record", reference, "completion", *COMPLETION, "--timeout", "5", check=False)
    assert refused.returncode == 2 and "completion waits for" in refused.stderr and "(concerns_decision)" in refused.stderr
    assert "completion" not in open_tasks(reference)
    waits = wait_for(lambda: (text := action_list(prefect_stack, reference)) and "Completion waits for" in text and text,
                     what="the Action List to say what completion waits for")  # fmt: skip
    assert "(concerns_decision)" in str(waits)

    decision = ["--outcome", "proceed_with_plan", "--reasons", "Weekly police liaison; home visits", "--recorded-by", "Kim SPO"]
    assert "concerns_decision recorded" in cli("record", reference, "concerns_decision", *decision).stdout
    history = {h.event: h.detail for h in transfer_views.status_of(reference).history}
    assert history["concerns decided"] == "proceed with a plan: Weekly police liaison; home visits"
    assert "completion recorded" in cli("record", reference, "completion", *COMPLETION).stdout

"""Each person finds their own work, on a real Prefect server (issue 28, item 7): the transfer's
run opens each task's run tagged with its owner role and the PDU whose people own it, and the
runs list the emails link to is served by the UI and lists exactly that PDU's and role's tasks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support.cli import cli
from support.smtp import FROM_PDU, TO_PDU
from support.transfers import RAISED, raise_form
from support.waits import prefect_api, wait_for

from tasks.domain.policy import get_policy
from tasks.domain.work_tags import runs_list_url

pytestmark = pytest.mark.prefect


def tagged(stack, *tags: str, state: str | None = None, since: dt.datetime | None = None) -> dict[str, list[str]]:
    """Run name -> tags of the runs carrying every one of `tags`, filtered as the UI's runs page
    filters for its query (`tag` repeated: all of them; `state` by name; a span: started since)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterState,
        FlowRunFilterStateName,
        FlowRunFilterTags,
    )

    run_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=list(tags)),
        state=FlowRunFilterState(name=FlowRunFilterStateName(any_=[state])) if state else None,
        start_time=FlowRunFilterStartTime(after_=since) if since else None,
    )
    with prefect_api(stack), get_client(sync_client=True) as client:
        return {r.name: sorted(r.tags) for r in client.read_flow_runs(flow_run_filter=run_filter)}


def test_a_task_run_carries_the_pdu_whose_people_own_it_and_the_linked_runs_list_shows_only_theirs(prefect_stack, tmp_path: Path):
    reference = raise_form(tmp_path, crn="C280001", raised_on=RAISED, lao=True)
    allocation, documents_sent = f"allocation-{reference}", f"documents-sent-{reference}"
    runs = wait_for(
        lambda: (r := tagged(prefect_stack, reference, state="Suspended")) and {allocation, documents_sent} <= set(r) and r,
        what="the allocation and documents-sent tasks to wait",
    )
    # Codes only, an LAO case's as any other's: the reference, the deployment's tag, the role, the PDU.
    assert runs[allocation] == sorted([reference, "transfer-task", "owner:receiving_spo", f"pdu:{TO_PDU}"])
    assert runs[documents_sent] == sorted([reference, "transfer-task", "owner:transferring_pp", f"pdu:{FROM_PDU}"])
    # The receiving SPO's list: this allocation, and not the transferring practitioner's task.
    days = get_policy().suspend_timeout_days
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    spo_list = tagged(prefect_stack, f"pdu:{TO_PDU}", "owner:receiving_spo", state="Suspended", since=since)
    assert allocation in spo_list and documents_sent not in spo_list
    assert documents_sent in tagged(prefect_stack, f"pdu:{FROM_PDU}", "owner:transferring_pp", state="Suspended", since=since)
    assert allocation not in tagged(prefect_stack, f"pdu:{FROM_PDU}", "owner:receiving_spo")  # another PDU's SPOs do not see it
    # The link opens the runs page of the UI at the server's root (its index: id="app"; /v2's is id="root"), not a
    # redirect elsewhere, even for a browser that chose the new UI (Prefect's prefect_ui_version cookie).
    url = runs_list_url(f"http://127.0.0.1:{prefect_stack.port}", TO_PDU, "receiving_spo", days)
    page = httpx.get(url, headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Cookie": "prefect_ui_version=v2"}, follow_redirects=False, timeout=30)
    assert page.status_code == 200 and "<div id=\"app\"" in page.text, (page.status_code, page.headers.get("location"))
    assert urlsplit(str(page.url)).path == "/runs"
    cli("withdraw", reference, "--reason", "test finished", "--by", "Sam")

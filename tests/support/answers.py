"""Answers sent as the Prefect UI sends them, and the run's message a UI sender reads.

The UI's Resume form posts the form's values to the API's resume endpoint and nothing else: no
claim, no look at the store. `ui_resume` does exactly that, over plain HTTP, against the real server.
"""

from __future__ import annotations

import random
import time
from typing import Any
from uuid import UUID

from prefect_runs.api import api_client


def ui_resume(api_url: str, flow_run_id: str, answer: dict[str, Any], auth: str | None = None) -> str:
    """POST the answer to the run's resume endpoint as the UI does. Returns "accepted" (the server
    stored it as the answer the run reads), "not waiting" (ABORT: resumed already), "conflict" (409:
    another resume met it in flight) or "rejected: <reason>".

    A server on SQLite answers 503 to a resume that met another's write ("database is locked"),
    having applied nothing; the person presses Resume again, as Prefect's own client retries it."""
    with api_client(api_url, auth) as http:
        for _ in range(5):
            response = http.post(f"/flow_runs/{flow_run_id}/resume", json={"run_input": answer}, timeout=60)
            if response.status_code != 503:
                break
            time.sleep(random.uniform(0.2, 1.0))
    if response.status_code == 409:
        return "conflict"
    response.raise_for_status()
    body = response.json()
    status = body.get("status")
    if status == "ACCEPT":
        return "accepted"
    if status == "ABORT":
        return "not waiting"
    return f"rejected: {(body.get('details') or {}).get('reason')}"


def run_messages(flow_run_id: str) -> str:
    """What the UI shows a person on the run's page: its state's message and its log, as one text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])), limit=200)
    return "\n".join([(run.state.message or "") if run.state else "", *(log.message for log in logs)])

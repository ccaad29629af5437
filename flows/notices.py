"""send-notice: the run an event starts to tell whoever it concerns at once (tasks/notify/notices.py).

Thin on purpose: services.notify starts it (one run per event, by idempotency key) when a
transfer arrives, a concern is escalated, a challenge is raised or a refusal disputed. A failed
delivery fails the run visibly and is retried; the sent-log makes every retry send only what has
not gone.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from tasks.notify import notices


@flow(name="send-notice", flow_run_name="notice-{reference}", retries=3, retry_delay_seconds=60)
def send_notice(reference: str, event: str) -> str:
    """Email the notice of one event (`raised`, `escalated:<n>`, `challenge:<n>`, `dispute:<n>`)."""
    line = notices.send_notices(reference, event).line()
    get_run_logger().info(line)
    return line

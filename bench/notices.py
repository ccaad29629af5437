"""Benchmark: how long from an escalation to the SPOs' inbox (issue 16, item 4).

    python bench/notices.py [--escalations 40] [--prefect]

A real SMTP server on loopback (aiosmtpd) and a real SQLite store in a temporary folder. Each
escalation goes through `services.escalate`, the CLI's path; the clock stops when the SMTP
server has both sides' messages. Printed beside a baseline measured in the same run: the same
escalation stored, then nothing sent (what the nightly digest did before: the SPO heard the next
morning, hours later).

Without --prefect no Prefect server is configured, so the notice is sent from the escalating
process (services.notify's fallback). With --prefect the bench starts a Prefect stack of its own
(ops.stack: an embedded server on a free port, the deployments from prefect.yaml, one process
worker, as the tests' stack) with the same store and SMTP settings; each notice is then sent by
a send-notice run, and the figure includes the worker's poll and the run's process start.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.changed:
            self.count += len(envelope.rcpt_tos)
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, n: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= n, timeout)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--escalations", type=int, default=40)
    parser.add_argument("--prefect", action="store_true", help="through a send-notice run on the stack at PREFECT_API_URL")
    args = parser.parse_args()

    from aiosmtpd.controller import Controller

    tmp = Path(tempfile.mkdtemp(prefix="bench-notices-"))
    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["CASETRANSFER_DATABASE_URL"] = f"sqlite:///{tmp / 'store.sqlite'}"
    os.environ["CASETRANSFER_DATA_DIR"] = str(tmp)
    os.environ["CASETRANSFER_OUTBOX"] = str(tmp / "outbox")
    os.environ["CASETRANSFER_SMTP_HOST"] = "127.0.0.1"
    os.environ["CASETRANSFER_SMTP_PORT"] = str(port)
    (tmp / "spocs.d").mkdir()
    real = {c: {"mailbox": f"transfers.{c.lower()}@probation.test", "example": False} for c in ("LDNBBG", "N50GMS")}
    (tmp / "spocs.d" / "bench.yaml").write_text(yaml.safe_dump({"spocs": real}))
    stack = None
    if args.prefect:
        # Prefect reads its API address when first imported: set it before anything imports Prefect.
        api_port = free_port()
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{api_port}/api"
        os.environ["PREFECT_HOME"] = str(tmp / "prefect")
        from ops.stack import Stack
        from tasks.store.migrate import upgrade

        upgrade(os.environ["CASETRANSFER_DATABASE_URL"])
        keys = ("CASETRANSFER_DATABASE_URL", "CASETRANSFER_DATA_DIR", "CASETRANSFER_OUTBOX", "CASETRANSFER_SMTP_HOST",
                "CASETRANSFER_SMTP_PORT")  # fmt: skip
        stack = Stack(home=tmp / "prefect", port=api_port, env={k: os.environ[k] for k in keys})
        started = time.perf_counter()
        stack.start_server()
        stack.deploy()
        stack.start_worker()
        assert stack.api_url == os.environ["PREFECT_API_URL"], stack.api_url
        print(f"stack started in {time.perf_counter() - started:.0f} s (not measured)")

    import services
    from tasks.domain import transfers
    from tasks.domain.form import parse_form
    from tasks.store.migrate import upgrade

    url = os.environ["CASETRANSFER_DATABASE_URL"]
    if not args.prefect:
        upgrade(url)
    form = yaml.safe_load((ROOT / "demo" / "forms" / "london-to-manchester.yaml").read_text())
    refs = [
        transfers.register_nsi(parse_form({**form, "crn": f"B{n:06d}"}), f"bench-notice-{n}-{time.time_ns()}")
        for n in range(args.escalations)
    ]

    # Baseline: the escalation stored and nothing sent (before issue 16, the SPO heard next morning).
    baseline = []
    for ref in refs:
        t = time.perf_counter()
        transfers.escalate(ref, "Baseline: stored only", "Bench")
        baseline.append(time.perf_counter() - t)

    latency, returned, how_sent = [], [], []
    expected = inbox.count
    for ref in refs:
        expected += 2  # both sides' SPOs
        t = time.perf_counter()
        # services.escalate, step by step, to see how the notice went: a run's id, or sent here.
        n = transfers.escalate(ref, "No allocation news", "Bench")
        how_sent.append("here" if " " in services.notify(ref, f"escalated:{n}") else "run")
        returned.append(time.perf_counter() - t)
        if not inbox.wait_for(expected, timeout=300):
            print(f"{ref}: not delivered within 300 s", file=sys.stderr)
            break
        latency.append(time.perf_counter() - t)
    controller.stop()
    if stack is not None:
        stack.stop()

    how = "a send-notice run on the Prefect stack" if args.prefect else "sent from the escalating process (no Prefect server)"
    print(f"escalation -> both SPOs' messages accepted by SMTP, {len(latency)} escalations, {how}")
    print(
        f"  latency p50 {statistics.median(latency) * 1000:8.1f} ms   p95 {pct(latency, 0.95) * 1000:8.1f} ms   max {max(latency) * 1000:8.1f} ms"
    )
    print(f"  sent by a send-notice run: {how_sent.count('run')}, from this process: {how_sent.count('here')}")
    print(f"  escalate call returns p50 {statistics.median(returned) * 1000:8.1f} ms")
    print(f"baseline: the escalation stored, nothing sent: p50 {statistics.median(baseline) * 1000:8.1f} ms")
    print("  (before issue 16 the SPO read it in the next 07:00 digest: up to ~24 hours, ~72 over a weekend)")


if __name__ == "__main__":
    main()

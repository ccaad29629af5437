"""POM-COM handovers: how long a day's run takes at a national number of records.

Seeds N example handovers (deterministic) into a fresh SQLite store, then times the three parts
of `handover-reminders` for one day: plan (store read), render (Jinja2 and the .ics) and deliver
(sent-log and the outbox), and a repeat of the same day (everything already sent). The baseline
beside it is the transfer reminders' own render of one message, for scale.

    python bench/handovers.py --records 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--day", default="2027-01-18")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-handovers-"))
    os.environ["CASETRANSFER_DATABASE_URL"] = f"sqlite:///{folder / 'store.sqlite'}"
    os.environ["CASETRANSFER_OUTBOX"] = str(folder / "outbox")
    os.environ.pop("CASETRANSFER_SMTP_HOST", None)
    day = dt.date.fromisoformat(args.day)

    from tasks.demo.handover_seed import seed_handovers
    from tasks.notify import mail_job
    from tasks.notify.handover_emails import HANDOVERS, run_handover_reminders
    from tasks.notify.sent_log import deliver
    from tasks.store.migrate import upgrade

    upgrade()
    started = time.perf_counter()
    # Handover dates spread over config demo.spread_days from 60 days before the day: a stress case,
    # far denser than a national caseload (every record is near its report window).
    n = len(seed_handovers(day - dt.timedelta(days=60), seed=1, n=args.records).created)
    seeded = time.perf_counter() - started

    t0 = time.perf_counter()
    plan = HANDOVERS.plan(day)
    t1 = time.perf_counter()
    emails = mail_job.render(HANDOVERS.mails(plan)).emails
    t2 = time.perf_counter()
    report = deliver(emails)
    t3 = time.perf_counter()
    again = run_handover_reminders(day)
    t4 = time.perf_counter()
    print(f"{n} handovers seeded and checked in {seeded:.1f} s; day {day}")
    print(f"plan: {len(plan.report)} in the report, {len(plan.alerts)} alerts, {t1 - t0:.2f} s")
    print(f"render: {len(emails)} emails in {t2 - t1:.2f} s ({(t2 - t1) / max(len(emails), 1) * 1000:.2f} ms each)")
    print(f"deliver to the outbox: {report.sent} sent in {t3 - t2:.2f} s")
    print(f"the same day again: {again.sent} sent, {again.skipped} skipped, {t4 - t3:.2f} s")


if __name__ == "__main__":
    main()

"""Benchmark: one day's reminder digests for a store of 100,000 NSIs, delivered to a real SMTP
server on loopback (aiosmtpd). Target: every recipient's digest rendered and delivered in
under 60 s on a 2-core machine.

    python bench/reminders.py [--nsis 100000] [--as-of 2026-12-21] [--keep DIR]

Prints the figures: seeding (not part of the target), the first run end to end (query, plan,
escalations, render, sent-log and SMTP), a repeat run the same day (sends nothing), then SMTP
delivery alone with one connection reused (config/email.yaml messages_per_connection) beside the
baseline of one connection per message, and how many emails one-per-action would have been.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


REPEATS = 3


def forget_reminders(url: str) -> None:
    """Undo earlier bench runs on a kept store, so the next run is a first run again."""
    from sqlalchemy import delete, update

    from tasks.notify.escalations import ACTOR
    from tasks.store.models import Action, HistoryEntry, SentEmail
    from tasks.store.unit_of_work import UnitOfWork

    with UnitOfWork(url) as uow:
        uow.session.execute(delete(SentEmail))
        uow.session.execute(delete(HistoryEntry).where(HistoryEntry.actor == ACTOR, HistoryEntry.key.like("escalated:%")))
        uow.session.execute(update(Action).where(Action.escalated_on.is_not(None)).values(escalated_on=None))
        uow.commit()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """An RSA-2048 certificate for 127.0.0.1 (the usual kind on mail relays) and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "bench-cert.pem", folder / "bench-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    """aiosmtpd handler that counts what arrives (keeping nothing, so memory stays flat)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.content)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsis", type=int, default=100_000)
    parser.add_argument("--as-of", default="2026-12-21", help="a working day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder instead of a temporary one")
    args = parser.parse_args()
    as_of = dt.date.fromisoformat(args.as_of)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'store.sqlite'}"
    from aiosmtpd.controller import Controller

    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=free_port())
    controller.start()
    os.environ.update(
        {
            "CASETRANSFER_DATABASE_URL": url,
            "CASETRANSFER_DATA_DIR": str(folder / "data"),
            "CASETRANSFER_SMTP_HOST": "127.0.0.1",
            "CASETRANSFER_SMTP_PORT": str(controller.port),
            "CASETRANSFER_TODAY": as_of.isoformat(),
        }
    )
    from tasks.notify import digests, mail_job, reminders
    from tasks.notify.email import SmtpTransport, delivery_config, render
    from tasks.settings import get_settings, reset_settings
    from tasks.store.migrate import upgrade

    reset_settings()
    settings = get_settings()
    # Every PDU gets a real (not example) mailbox here: example ones are never mailed through SMTP.
    from tasks.places.estate import load_estate

    spocs = settings.data_dir / "spocs.d"
    spocs.mkdir(parents=True, exist_ok=True)
    entries = {
        p.code: {"mailbox": f"transfers.{p.code.lower()}@probation.test", "role": "SPO", "example": False}
        for p in load_estate().geographic_pdus()
    }
    (spocs / "bench.yaml").write_text(yaml.safe_dump({"spocs": entries}))
    fresh = not (folder / "store.sqlite").exists()
    upgrade(url)
    if fresh:
        from tasks.demo.seed import seed

        t = time.perf_counter()
        seed(args.nsis, args.seed, as_of, url)
        print(f"seeded {args.nsis:,} NSIs in {time.perf_counter() - t:.1f} s (not part of the target)")
    else:
        forget_reminders(url)
        print(f"reusing the seeded store in {folder}; its reminders and escalations were cleared")

    # What run_reminders does, step by step, timed.
    t0 = time.perf_counter()
    plan = digests.DIGESTS.plan(as_of, url)
    t1 = time.perf_counter()
    escalated = digests.DIGESTS.prepare(plan, url)
    t2 = time.perf_counter()
    emails = mail_job.render(digests.DIGESTS.mails(plan), url).emails
    t3 = time.perf_counter()
    from tasks.notify.sent_log import deliver

    report = deliver(emails, url)
    t4 = time.perf_counter()
    listed = sum(d.item_count for d in plan.digests)
    sizes = sorted(len(e.body) for e in emails)
    print(f"as of {as_of}: {plan.actions_considered:,} open actions due by the end of the warning window")
    print(f"  query + plan      {t1 - t0:6.2f} s  {len(plan.digests)} digests, {listed:,} actions listed")
    print(f"  escalations       {t2 - t1:6.2f} s  {escalated:,} recorded (Action.escalated_on + history)")
    print(
        f"  render            {t3 - t2:6.2f} s  {len(emails)} messages, median {sizes[len(sizes) // 2] / 1024:.0f} KiB, largest {sizes[-1] / 1024:.0f} KiB"
    )
    print(f"  sent-log + SMTP   {t4 - t3:6.2f} s  sent {report.sent}, failed {report.failed} via {report.transport}")
    total = t4 - t0
    verdict = "PASS" if total < 60 and report.failed == 0 and report.sent == len(emails) else "FAIL"
    print(f"first run total     {total:6.2f} s  (target < 60 s: {verdict}); the server received {counter.messages} messages")

    t = time.perf_counter()
    again = digests.run_reminders(as_of, url)
    print(f"repeat run, same day {time.perf_counter() - t:5.2f} s  sent {again.sent}, skipped {again.skipped} already sent")

    # SMTP delivery alone, same messages, no sent-log: connection reuse against the baseline of
    # one connection per message, in plain SMTP and with STARTTLS (what a real relay asks for:
    # a TLS handshake per connection, verified against a certificate as in production).
    bodies = [(e.key, e.recipient, e.body) for e in emails]
    timeout = float(delivery_config()["smtp_timeout_seconds"])
    per_conn = int(delivery_config()["messages_per_connection"])
    cert, key = self_signed(folder)
    os.environ["SSL_CERT_FILE"] = str(cert)  # the client's default context trusts the bench certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    tls_controller = Controller(Counter(), hostname="127.0.0.1", port=free_port(), tls_context=server_tls, require_starttls=True)
    tls_controller.start()
    servers = (
        ("plain", settings),
        ("STARTTLS", settings.model_copy(update={"smtp_port": tls_controller.port, "smtp_starttls": True})),
    )
    modes = (
        ("one connection per message (baseline)", 1),
        (f"one connection per {per_conn} messages (config)", per_conn),
        ("one connection for all", len(bodies)),
    )
    for security, server_settings in servers:
        for label, n in modes:
            runs = []
            for _ in range(REPEATS):
                transport = SmtpTransport(server_settings, timeout, n)
                t = time.perf_counter()
                for k, rcpt, body in bodies:
                    transport.send(k, rcpt, body)
                transport.close()
                runs.append(time.perf_counter() - t)
            mid = statistics.median(runs)
            print(
                f"SMTP only, {security:8} {label:45} {mid * 1000:8.1f} ms  ({mid / len(bodies) * 1000:.2f} ms a message, median of {REPEATS})"
            )
    tls_controller.stop()
    # Render cost per message without the store, for scale.
    one = plan.digests[len(plan.digests) // 2]
    t = time.perf_counter()
    for _ in range(20):
        render(digests.TEMPLATE, digests.digest_context(one, reminders.load_rules()))
    print(f"render one digest ({one.item_count} actions)        {(time.perf_counter() - t) / 20 * 1000:8.1f} ms")
    print(f"one email per action instead of digests: {listed:,} emails a day instead of {len(emails)}")
    controller.stop()
    if not args.keep:
        print(f"(store in {folder}; pass --keep DIR to reuse a seeded store)")


if __name__ == "__main__":
    main()

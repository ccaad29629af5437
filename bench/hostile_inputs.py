"""Replay the hostile inputs of issue 32 against the `casetransfer` command and count what happens.

    python bench/hostile_inputs.py [--verbose]

Categories: dates at the edges, files that are not what they say, numbers, mapping files, forms,
misleading messages, and the two resource cases (a YAML alias bomb, huge counts). Every call runs
`ops.cli.main` in this process (tests/support/cli.py), except the resource cases, which run as a
child process so a blow-up is measured (wall time and peak memory) and cannot take this one down.

A call is a "clear error" when it exits 2 or 3 with a message and no traceback; a "traceback" when
a Python traceback reaches the output; "stored on refusal" when a call that exited non-zero
changed the store's row counts. Misleading messages are checked against the words they must say.
A temporary data folder (SQLite store, outbox) is used; no Prefect server is needed.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
TODAY = "2026-12-21"
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Tally:
    calls: int = 0
    clear: int = 0
    ok: int = 0
    tracebacks: int = 0
    other: int = 0
    stored_on_refusal: int = 0
    misleading: int = 0
    hung: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    traceback_calls: list[str] = field(default_factory=list)
    misleading_calls: list[str] = field(default_factory=list)


class Hung(BaseException):
    """A call that ran past its time (a BaseException: the command's own handlers must not catch it)."""


def _alarm(signum: int, frame: object) -> None:
    raise Hung


def store_counts() -> tuple[int, ...]:
    from sqlalchemy import func, select

    from tasks.store.models import Base
    from tasks.store.unit_of_work import UnitOfWork

    with UnitOfWork() as uow:
        return tuple(uow.session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables)


def make_files(tmp: Path) -> dict[str, Path]:
    import yaml
    from openpyxl import Workbook

    f: dict[str, Path] = {}

    def put(name: str, data: bytes | str) -> Path:
        p = tmp / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        f[name] = p
        return p

    (tmp / "a-directory.xlsx").mkdir()
    (tmp / "a-directory.yaml").mkdir()
    (tmp / "a-directory.csv").mkdir()
    f["dir.xlsx"], f["dir.yaml"], f["dir.csv"] = tmp / "a-directory.xlsx", tmp / "a-directory.yaml", tmp / "a-directory.csv"
    wb = Workbook()
    ws = wb.active
    ws.append(["CRN", "Name", "Date of birth", "Receiving PDU"])
    ws.append(["X123456", "Jo Smith", "1990-04-12", "Manchester"])
    good = io.BytesIO()
    wb.save(good)
    put("good.xlsx", good.getvalue())
    put("truncated.xlsx", good.getvalue()[:300])
    put("empty.xlsx", b"")
    put("csv-named.xlsx", "crn,name\nX123456,Jo\n")
    notbook = io.BytesIO()
    with zipfile.ZipFile(notbook, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    put("zip-not-workbook.xlsx", notbook.getvalue())
    put("binary.xlsx", bytes(range(256)) * 8)
    for ext in ("yaml", "csv", "json"):
        put(f"utf16.{ext}", "crn: X123456\nname: Jo\n".encode("utf-16"))
        put(f"binary.{ext}", bytes(range(256)) * 4)
        put(f"empty.{ext}", b"")
    lol = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lol.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    put("bomb.yaml", "\n".join(lol) + "\n")
    put("tag.yaml", "crn: !!python/object/apply:os.getcwd []\n")
    put("custom-tag.yaml", "crn: !secret X123456\n")
    put("invalid.yaml", "crn: [X123456\nname: {\n")
    put("list.yaml", "- crn\n- name\n")
    put("deep.yaml", "[" * 20000 + "]" * 20000)
    put("invalid.json", '{"crn": ')
    form = yaml.safe_load((ROOT / "demo" / "forms" / "london-to-manchester.yaml").read_text())

    def form_with(file_name: str, **changes: object) -> None:
        put(file_name, yaml.safe_dump({**form, **changes}))

    form_with("form-dob-year1.yaml", date_of_birth="0001-01-01")
    form_with("form-dob-9999.yaml", date_of_birth="9999-12-31")
    form_with("form-dob-number.yaml", date_of_birth=19900412)
    form_with("form-dob-1899.yaml", date_of_birth="1899-12-31")
    form_with("form-raised-1900.yaml", raised_on="1900-01-01")
    form_with("form-received-1900.yaml", received_on="1900-01-02", raised_on="1900-01-01")
    form_with("form-end-9999.yaml", sentence_end_date="9999-12-31")
    form_with("form-move-year1.yaml", move_date="0001-01-01")
    form_with("form-oasys-9999.yaml", last_oasys_date="9999-12-31")
    form_with("form-mappa-huge.yaml", mappa_level=10**30, mappa_category=1)
    form_with("form-name-huge.yaml", name="x" * 100_000)
    put("mapping-invalid.yaml", "columns: [crn\n")
    put("mapping-three.yaml", "min_header_matches: 'three'\n")
    put("mapping-crn-number.yaml", "columns:\n  crn: 12345\n")
    put("mapping-list.yaml", "- crn\n")
    put("mapping-null-columns.yaml", "columns: null\n")
    put("mapping-columns-list.yaml", "columns: [a, b]\n")
    header = "crn,name,prison,pom_name,pom_email,com_name,com_email,omu_mailbox,sentence_type,sentence_length_months,release_date,handover_date\n"
    row = "X123456,Jo,HMP Leeds,Pat,pat@x.gov.uk,Kim,kim@x.gov.uk,omu@x.gov.uk,SDS,{months},{release},{handover}\n"
    put("handovers-year1.csv", header + row.format(months=24, release="0001-01-01", handover="0001-01-01"))
    put("handovers-9999.csv", header + row.format(months=24, release="9999-12-31", handover="9999-12-30"))
    put("handovers-months-huge.csv", header + row.format(months="99999999999999999999999", release="2027-06-01", handover="2027-03-01"))
    put("handovers-months-negative.csv", header + row.format(months="-5", release="2027-06-01", handover="2027-03-01"))
    put("handovers-nul.csv", header + "X123456,\x00\x00,HMP\n")
    put("a-file", "not a folder")
    return f


def pick(status: str, nsi_type: str | None = None, shape: int | None = None) -> str | None:
    from sqlalchemy import select

    from tasks.store.models import Nsi
    from tasks.store.unit_of_work import UnitOfWork

    q = select(Nsi.reference).where(Nsi.status == status)
    if nsi_type:
        q = q.where(Nsi.nsi_type == nsi_type)
    if shape:
        q = q.where(Nsi.shape_version == shape)
    with UnitOfWork() as uow:
        return uow.session.scalars(q.order_by(Nsi.reference).limit(1)).first()


def states() -> dict[str, str]:
    """NSIs in the states the misleading-message cases need, made in the store directly."""
    import yaml

    from tasks.domain import transfers
    from tasks.domain.form import parse_form

    demo = ROOT / "demo" / "forms"
    os.environ["CASETRANSFER_SHAPE_VERSION"] = "1"
    from tasks.settings import reset_settings

    reset_settings()
    refused = transfers.register_nsi(parse_form(yaml.safe_load((demo / "london-to-manchester.yaml").read_text())), "hostile-refused")
    transfers.apply_step(
        refused,
        "decision",
        {"recorded_by": "Kim", "outcome": "refuse", "reasons": ["Risk of harm would increase and could not be managed at the new address"],
         "evidence": "Victim nearby"},
    )  # fmt: skip
    del os.environ["CASETRANSFER_SHAPE_VERSION"]
    reset_settings()
    temp = transfers.register_nsi(parse_form(yaml.safe_load((demo / "leeds-to-sheffield-temporary-move.yaml").read_text())), "hostile-temp")
    open_ct = transfers.register_nsi(parse_form(yaml.safe_load((demo / "birmingham-nearby.yaml").read_text())), "hostile-open")
    completed = pick("completed", "case_transfer", 2) or pick("completed", "case_transfer") or open_ct
    return {"refused": refused, "temporary": temp, "open": open_ct, "completed": completed}


Check = Callable[[str], bool]


def cases(f: dict[str, Path], s: dict[str, str], tmp: Path) -> list[tuple[str, list[str], Check | None]]:
    c: list[tuple[str, list[str], Check | None]] = []
    edges = ["9999-12-31", "0001-01-01", "2100-06-01", "1900-01-01", "2026-02-30", "tomorrow", "", "20261221", "-1"]
    for day in edges:
        c.append(("dates", ["remind", "--as-of", day, "--dry-run"], None))
        c.append(("dates", ["remind", "--as-of", day], None))
        c.append(("dates", ["tracker", "--as-of", day, "--out", str(tmp / "trackers")], None))
        c.append(("dates", ["handovers", "--as-of", day], None))
        c.append(("dates", ["handover-reminders", "--as-of", day, "--dry-run"], None))
        c.append(("dates", ["handover-reminders", "--as-of", day], None))
        c.append(("dates", ["seed", "--transfers", "1", "--seed", "77", "--as-of", day], None))
        c.append(("dates", ["seed-handovers", "--records", "1", "--seed", "78", "--as-of", day], None))
        c.append(("dates", ["record-handover-session", "X999999", "--on", day], None))
        c.append(("dates", ["correct", s["open"], "allocation", "--done-on", day, "--reason", "r"], None))
        c.append(("dates", ["action-done", s["open"], "documents", "--on", day], None))
        c.append(("dates", ["working-days", day or "x", "10"], None))
    for days in ["99999999999999999999", "-99999999999999999999", "1000000000", "-1000000000", "9999999"]:
        c.append(("numbers", ["working-days", "2026-11-24", days], None))
    for day in ["0001-01-01", "9999-12-31"]:
        c.append(("dates", ["working-days", day, "10"], None))
        c.append(("dates", ["working-days", day, "-10"], None))
    for months in ["99999999999999999999999", "-1", "0", "1e9", "NaN"]:
        c.append(("numbers", ["add-handover", "--crn", "X765432", "--name", "Jo", "--prison", "HMP Leeds", "--pom-name", "P",
                              "--pom-email", "p@x.gov.uk", "--com-name", "K", "--com-email", "k@x.gov.uk", "--omu-mailbox",
                              "o@x.gov.uk", "--sentence-type", "SDS", "--sentence-months", months, "--release-date",
                              "2027-06-01", "--handover-date", "2027-03-01"], None))  # fmt: skip
    for dates in [("0001-01-01", "0001-01-01"), ("9999-12-31", "9999-12-30"), ("1900-01-02", "1900-01-01")]:
        c.append(("dates", ["add-handover", "--crn", "X765433", "--name", "Jo", "--prison", "HMP Leeds", "--pom-name", "P",
                            "--pom-email", "p@x.gov.uk", "--com-name", "K", "--com-email", "k@x.gov.uk", "--omu-mailbox",
                            "o@x.gov.uk", "--sentence-type", "SDS", "--sentence-months", "24", "--release-date", dates[0],
                            "--handover-date", dates[1]], None))  # fmt: skip
    c += [
        ("numbers", ["seed", "--transfers", "1", "--seed", "-1"], None),
        ("numbers", ["seed", "--transfers", "-5"], None),
        ("numbers", ["seed", "--transfers", "99999999999999999999999"], None),
        ("numbers", ["seed", "--transfers", "1", "--seed", "99999999999999999999999"], None),
        ("numbers", ["seed-handovers", "--records", "-1"], None),
        ("numbers", ["seed-handovers", "--records", "1", "--seed", "-1"], None),
        ("numbers", ["seed-handovers", "--records", "99999999999999999999999"], None),
        ("numbers", ["locate", "x" * 10000], None),
        ("numbers", ["status", "CT" + "9" * 40], None),
        ("numbers", ["status", "x" * 10000], None),
    ]
    for name in ["dir.yaml", "utf16.yaml", "binary.yaml", "empty.yaml", "tag.yaml", "custom-tag.yaml", "invalid.yaml",
                 "list.yaml", "deep.yaml", "utf16.json", "binary.json", "invalid.json", "empty.json"]:  # fmt: skip
        c.append(("files", ["raise", str(f[name])], None))
    c.append(("files", ["raise", str(tmp / "no-such-form.yaml")], None))
    for name in ["form-dob-year1.yaml", "form-dob-9999.yaml", "form-dob-number.yaml", "form-dob-1899.yaml", "form-raised-1900.yaml",
                 "form-received-1900.yaml", "form-end-9999.yaml", "form-move-year1.yaml", "form-oasys-9999.yaml",
                 "form-mappa-huge.yaml", "form-name-huge.yaml"]:  # fmt: skip
        check: Check | None = None
        if name == "form-dob-number.yaml":
            def check(err: str) -> bool:
                return "date_of_birth" in err and "zero time" not in err
        c.append(("forms", ["raise", str(f[name])], check))
    for name in ["dir.xlsx", "truncated.xlsx", "empty.xlsx", "csv-named.xlsx", "zip-not-workbook.xlsx", "binary.xlsx", "utf16.csv"]:
        c.append(("files", ["import-tracker", str(f[name]), "--dry-run", "--no-start-runs"], None))
    c.append(("files", ["import-tracker", str(tmp / "missing.xlsx"), "--dry-run"], None))
    for name in ["dir.xlsx", "dir.csv", "truncated.xlsx", "empty.xlsx", "csv-named.xlsx", "zip-not-workbook.xlsx", "binary.xlsx",
                 "utf16.csv", "binary.csv", "empty.csv", "handovers-year1.csv", "handovers-9999.csv", "handovers-months-huge.csv",
                 "handovers-months-negative.csv", "handovers-nul.csv"]:  # fmt: skip
        c.append(("files", ["import-handovers", str(f[name])], None))
    c.append(("files", ["import-handovers", str(tmp / "missing.csv")], None))
    for out in [str(f["a-file"]), str(f["a-file"] / "sub"), "/proc/no-such-place/trackers"]:
        c.append(("files", ["tracker", "--out", out], None))
    for name in ["dir.yaml", "utf16.yaml", "binary.yaml", "empty.yaml", "tag.yaml", "custom-tag.yaml", "invalid.yaml",
                 "mapping-invalid.yaml", "mapping-three.yaml", "mapping-crn-number.yaml", "mapping-list.yaml",
                 "mapping-null-columns.yaml", "mapping-columns-list.yaml", "deep.yaml"]:  # fmt: skip
        c.append(("mapping", ["import-tracker", str(f["good.xlsx"]), "--mapping", str(f[name]), "--dry-run", "--no-start-runs"], None))
    c.append(("mapping", ["import-tracker", str(f["good.xlsx"]), "--mapping", str(tmp / "missing.yaml"), "--dry-run"], None))

    def says(*words: str) -> Check:
        return lambda err: all(w.lower() in err.lower() for w in words)

    c += [
        ("misleading", ["dispute", s["refused"], "--grounds", "g", "--by", "Jo"], says("decision")),
        ("misleading", ["challenge", s["temporary"], "--concern", "c", "--by", "Pat"], says("temporary move")),
        ("misleading", ["challenge", s["completed"], "--concern", "c", "--by", "Pat"], says(s["completed"], "completed")),
        ("misleading", ["challenge", s["open"], "--concern", "c", "--role", "admin", "--by", "Pat"], says("role", "admin")),
        ("misleading", ["challenge", s["temporary"], "--concern", "c", "--role", "admin", "--by", "Pat"], says("role", "admin")),
    ]
    return c


def _peak_mb(pid: int) -> float:
    """The process's resident high-water mark (VmHWM). Read from /proc while it runs: rusage's
    ru_maxrss would include this parent's memory, which a child keeps across exec on Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_resource(args: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, float, float, str]:
    """(exit code or None if killed at the timeout, seconds, peak MB, stderr's last line) of a child process."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errf)
        code: int | None = None
        while True:
            peak = max(peak, _peak_mb(proc.pid))
            if proc.poll() is not None:
                code = proc.returncode
                break
            if time.perf_counter() - started > timeout:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        errf.seek(0)
        lines = errf.read().decode(errors="replace").strip().splitlines()
    return code, seconds, peak, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--timeout", type=float, default=20.0, help="Seconds before a resource case is killed")
    parser.add_argument("--call-timeout", type=int, default=60, help="Seconds before an in-process call is stopped")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    # At most 3 GB of address space for this process and the children it starts: a blow-up is
    # stopped with a MemoryError instead of taking the shared machine.
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        tmp = Path(name)
        os.environ.update(
            CASETRANSFER_DATA_DIR=str(tmp / "data"), CASETRANSFER_TODAY=TODAY, CASETRANSFER_PREFECT_API_URL="http://127.0.0.1:9/api"
        )
        for var in ("PREFECT_API_URL", "CASETRANSFER_DATABASE_URL", "CASETRANSFER_SMTP_HOST"):
            os.environ.pop(var, None)
        (tmp / "data").mkdir()
        from support.cli import cli

        cli("seed", "--transfers", "60", "--seed", "1", "--as-of", "2026-11-20")
        files = make_files(tmp)
        s = states()
        tally = Tally()
        started = time.perf_counter()
        for category, argv, check in cases(files, s, tmp):
            before = store_counts()
            tally.calls += 1
            tally.by_category[category] += 1
            label = f"{category}: casetransfer {' '.join(a if len(a) < 60 else a[:57] + '...' for a in argv)}"
            signal.alarm(args.call_timeout)
            try:
                r = cli(*argv, check=False)
            except (Hung, MemoryError) as exc:
                tally.hung += 1
                tally.traceback_calls.append(f"{label} -> {'ran past ' + str(args.call_timeout) + ' s' if isinstance(exc, Hung) else 'MemoryError'}")
                print(f"[hung] {label}", flush=True)
                continue
            finally:
                signal.alarm(0)
            both = r.stdout + r.stderr
            if TRACEBACK in both:
                tally.tracebacks += 1
                tally.traceback_calls.append(f"{label} -> {both.strip().splitlines()[-1][:160]}")
            elif r.returncode in (2, 3) and r.stderr.strip():
                tally.clear += 1
            elif r.returncode == 0:
                tally.ok += 1
            else:
                tally.other += 1
            if r.returncode != 0 and store_counts() != before:
                tally.stored_on_refusal += 1
            if check is not None and not check(r.stderr):
                tally.misleading += 1
                tally.misleading_calls.append(f"{label} -> {r.stderr.strip()[:200]}")
            if args.verbose:
                print(f"[{r.returncode}] {label}\n    {(r.stderr.strip().splitlines() or [''])[-1][:200]}", flush=True)
        seconds = time.perf_counter() - started
        print(f"hostile calls: {tally.calls} in {seconds:.0f} s ({dict(tally.by_category)})")
        print(f"  clear errors (exit 2/3, no traceback): {tally.clear}")
        print(f"  accepted (exit 0): {tally.ok}")
        print(f"  other exits without a traceback: {tally.other}")
        print(f"  tracebacks: {tally.tracebacks}")
        print(f"  ran past {args.call_timeout} s or out of memory (stopped): {tally.hung}")
        print(f"  stored something on a refusal: {tally.stored_on_refusal}")
        print(f"  misleading messages: {tally.misleading}")
        for line in tally.traceback_calls:
            print(f"    traceback: {line}")
        for line in tally.misleading_calls:
            print(f"    misleading: {line}")
        env = dict(os.environ)
        resource_cases = [
            ("alias bomb as a form", ["raise", str(files["bomb.yaml"])]),
            ("alias bomb as a mapping", ["import-tracker", str(files["good.xlsx"]), "--mapping", str(files["bomb.yaml"]), "--dry-run"]),
            ("seed --transfers 100000000", ["seed", "--transfers", "100000000", "--seed", "5"]),
            ("seed-handovers --records 100000000", ["seed-handovers", "--records", "100000000", "--seed", "5"]),
            ("working-days 2026-11-24 99999999", ["working-days", "2026-11-24", "99999999"]),
        ]
        print(f"resource cases (child process, killed after {args.timeout:g} s):")
        for label, argv in resource_cases:
            code, secs, mb, last = run_resource(argv, env, args.timeout)
            shown = "killed at the timeout" if code is None else f"exit {code}"
            print(f"  {label}: {shown} in {secs:.1f} s, peak {mb:.0f} MB: {last[:150]}")


if __name__ == "__main__":
    main()

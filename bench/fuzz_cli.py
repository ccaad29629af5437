"""The command-line fuzz test (tests/integration/test_cli_fuzz.py), run longer, with its totals.

    python bench/fuzz_cli.py [--examples 300] [--command status ...]

For each command that needs no Prefect server, Hypothesis draws --examples command lines (random
option values, random bytes for files: tests/support/fuzz.py) and runs each in this process. Prints,
per command, the examples run and the exit codes seen, then the totals: tracebacks, unexpected
errors logged, and refusals that changed the store (each should be 0). Exits 1 if any was not.
A temporary data folder holds its own SQLite store; no Prefect server is configured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300, help="Command lines drawn per command")
    parser.add_argument("--command", action="append", help="Only these commands (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-cli-") as name:
        tmp = Path(name)
        (tmp / "data").mkdir()
        os.environ.update(
            CASETRANSFER_DATA_DIR=str(tmp / "data"), CASETRANSFER_TODAY="2026-12-21", CASETRANSFER_PREFECT_API_URL="http://127.0.0.1:9/api"
        )
        for var in ("PREFECT_API_URL", "CASETRANSFER_DATABASE_URL", "CASETRANSFER_SMTP_HOST"):
            os.environ.pop(var, None)
        import yaml
        from hypothesis import HealthCheck, given, settings
        from support.cli import cli
        from support.fuzz import Files, check_one, commands

        from tasks.domain import transfers
        from tasks.domain.form import parse_form

        cli("seed", "--transfers", "12", "--seed", "3", "--as-of", "2026-11-20")
        form = yaml.safe_load((ROOT / "demo" / "forms" / "london-to-manchester.yaml").read_text())
        refs = [transfers.register_nsi(parse_form(form), "fuzz-open"), "CT000001", "CT000005", "TM999999"]
        strategies = commands(refs, Files(tmp / "files").prepare())
        chosen = args.command or sorted(strategies)
        codes: dict[str, Counter[int]] = {c: Counter() for c in chosen}
        problems: Counter[str] = Counter()
        examples: list[str] = []
        started = time.perf_counter()

        def runner(command: str) -> Callable[[], None]:
            seen = codes[command]

            @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(argv=strategies[command])
            def run(argv: list[str]) -> None:
                code, broken = check_one(argv, cli)
                seen[code] += 1
                for b in broken:
                    kind = b.split(":", 1)[0]
                    problems[kind] += 1
                    if len(examples) < 10:
                        examples.append(f"casetransfer {argv!r}: {b[:400]}")

            return run

        for command in chosen:
            runner(command)()
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(codes[command].items()))
            print(f"{command:<26} {sum(codes[command].values()):>5} examples   exit codes {shown}", flush=True)
        total = Counter[int]()
        for c in codes.values():
            total.update(c)
        print(f"\n{sum(total.values())} command lines in {time.perf_counter() - started:.0f} s; "
              f"exit codes {dict(sorted(total.items()))}")  # fmt: skip
        print(f"tracebacks: {problems['a traceback was printed']}")
        print(f"unexpected errors logged: {problems['an unexpected error was logged']}")
        print(f"refusals that changed the store: {problems['the store changed on a refusal']}")
        print(f"other exit codes: {sum(v for k, v in problems.items() if k.startswith('exit code'))}")
        for e in examples:
            print(f"  {e}")
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()

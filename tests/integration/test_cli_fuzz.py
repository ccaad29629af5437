"""No input breaks the command line (issue 32): for each command that needs no Prefect server,
Hypothesis draws random values for every option and random bytes for every file, and each command
line must end with exit 0, 1, 2 or 3, print no traceback, log no unexpected error, and leave the
store as it was when refused. A bounded number of examples per command (about a minute in all);
bench/fuzz_cli.py runs the same for longer and prints its totals.

No Prefect server is configured: commands that would need one fail cleanly (exit 1) after the
checks this test is about.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_FORM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli import cli
from support.fuzz import Files, check_one, commands

from tasks.settings import reset_settings

EXAMPLES = int(os.environ.get("CASETRANSFER_FUZZ_EXAMPLES", "30"))
_world: dict[str, object] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A store of its own with a few NSIs in different states, no Prefect server, and a folder for
    the random files. Environment set for the module and put back afterwards."""
    from tasks.domain import transfers
    from tasks.domain.form import parse_form

    root = tmp_path_factory.mktemp("fuzz")
    saved = dict(os.environ)
    os.environ.update(
        CASETRANSFER_DATA_DIR=str(root / "data"),
        CASETRANSFER_TODAY="2026-12-21",
        CASETRANSFER_PREFECT_API_URL="http://127.0.0.1:9/api",  # nothing listens: refused at once
    )
    for name in ("PREFECT_API_URL", "CASETRANSFER_DATABASE_URL", "CASETRANSFER_SMTP_HOST"):
        os.environ.pop(name, None)
    (root / "data").mkdir()
    reset_settings()
    try:
        cli("seed", "--transfers", "12", "--seed", "3", "--as-of", "2026-11-20")
        ref = transfers.register_nsi(parse_form(yaml.safe_load(DEMO_FORM.read_text())), "fuzz-open")
        refs = [ref, "CT000001", "CT000005", "TM999999"]
        _world.update(files=Files(root / "files").prepare(), refs=refs)
        yield _world
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()


COMMANDS = sorted(commands(["CT000001"], Files(Path("/nonexistent"))))


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=False)
@given(data=st.data())
def test_no_command_line_ends_in_a_traceback_or_changes_the_store_when_refused(command, data, world):
    argv = data.draw(commands(world["refs"], world["files"])[command], label="argv")
    code, broken = check_one(argv, cli)
    assert not broken, f"casetransfer {argv!r} exited {code}: " + "; ".join(broken)

"""The launcher and the frozen server start lean on Prefect's insides: this fails when a Prefect
upgrade is installed that they were not tested with, or that lacks what they use; and on an
untested version the stack starts workers and servers Prefect's own way."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import prefect_internals
from ops.prefect_internals import FROZEN_SERVER_NEEDS, LAUNCHER_NEEDS, TESTED_PREFECT_VERSIONS, missing, prefect_version
from ops.stack import Stack


def test_the_installed_prefect_is_a_version_the_launcher_and_frozen_start_were_tested_with():
    assert prefect_version() in TESTED_PREFECT_VERSIONS


def test_prefect_still_has_everything_the_launcher_and_the_frozen_start_use():
    assert missing(LAUNCHER_NEEDS) == []
    assert missing(FROZEN_SERVER_NEEDS) == []


def test_what_is_gone_is_named():
    assert missing([("prefect.client.orchestration", "no_such_thing"), ("no_such_module", "")]) == [
        "prefect.client.orchestration.no_such_thing",
        "no_such_module",
    ]


def test_on_an_untested_prefect_workers_start_without_the_launcher_and_say_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    stack = Stack(home=tmp_path, port=0, prefork=True)
    assert "ops.launcher" in stack.worker_command("w1")
    monkeypatch.setattr(prefect_internals, "prefect_version", lambda: "99.0.0")
    command = stack.worker_command("w2")
    assert "ops.launcher" not in command and command[-2:] == ["--name", "w2"]
    assert "tested with Prefect 3.8.8, not 99.0.0" in capsys.readouterr().err


def test_the_stack_can_be_made_before_prefect_reads_its_settings():
    # `casetransfer up` sets PREFECT_API_URL after importing the stack; Prefect reads its settings
    # once, when first imported, so importing the stack must not import Prefect.
    import subprocess
    import sys

    code = "import sys, ops.stack, ops.demo, prefect_runs.internals; print('prefect' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"

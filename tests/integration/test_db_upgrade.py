"""`casetransfer db upgrade` says what it did (issue 27): a new database is created at the newest
revision, and a second run says it is up to date."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from ops.cli import app
from tasks.store.migrate import alembic_config


def test_upgrading_a_new_database_says_it_created_the_store_at_the_newest_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", url)
    from tasks.settings import get_settings

    get_settings.cache_clear()
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"])
        second = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()

    assert first.exit_code == 0, first.output
    assert f"created the store at revision {head}" in first.output
    assert f"the store is up to date (revision {head})" in second.output

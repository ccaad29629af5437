"""Shared fixtures: a real store (SQLite and PostgreSQL), and a real Prefect stack."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.settings import ROOT, reset_settings

PG_ADMIN_URL = os.environ.get("CASETRANSFER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TODAY = dt.date(2026, 12, 21)
DEMO_FORM = ROOT / "demo" / "forms" / "london-to-manchester.yaml"


def demo_form(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(DEMO_FORM.read_text())
    data.update(changes)
    return data


def _clear_caches() -> None:
    from tasks.domain.policy import get_policy
    from tasks.store.session import get_engine

    reset_settings()
    get_policy.cache_clear()
    get_engine.cache_clear()


@pytest.fixture(autouse=True)
def _pinned_today(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CASETRANSFER_TODAY", TODAY.isoformat())
    _clear_caches()
    yield
    _clear_caches()


def pin_today(monkeypatch: pytest.MonkeyPatch, day: dt.date) -> None:
    """Move "today" on within a test (work recorded on the day it was done, after raising)."""
    monkeypatch.setenv("CASETRANSFER_TODAY", day.isoformat())
    reset_settings()


@pytest.fixture
def sequential_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """New Case Transfers are raised under the sequential shape (1), as before concurrent tasks:
    NSIs still open from then finish on it, so its rules are still tested."""
    monkeypatch.setenv("CASETRANSFER_SHAPE_VERSION", "1")
    reset_settings()


def _pg_admin() -> Any:
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - CI starts PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {admin}: {exc}")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store migrated once per session; each test gets a copy of the file."""
    from tasks.store.migrate import upgrade

    path = tmp_path_factory.mktemp("migrated") / "store.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_pg_template() -> Iterator[str]:
    """One PostgreSQL database migrated once per session; each test's database is cloned from it
    (CREATE DATABASE ... TEMPLATE), which takes a fraction of running the migrations again."""
    from tasks.store.migrate import upgrade

    name = f"ct_template_{uuid.uuid4().hex[:10]}"
    conn = _pg_admin()
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(_pg_url(name))  # Alembic's engine holds no connection afterwards (NullPool)
        yield name
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def _pg_database(template: str) -> Iterator[str]:
    name = f"ct_test_{uuid.uuid4().hex[:10]}"
    conn = _pg_admin()
    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        from tasks.store.session import get_engine

        get_engine.cache_clear()
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty, migrated domain database: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        url = f"sqlite:///{path}"
        gen: Iterator[str] | None = None
    else:
        gen = _pg_database(request.getfixturevalue("migrated_pg_template"))
        url = next(gen)
    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", url)
    monkeypatch.setenv("CASETRANSFER_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("CASETRANSFER_TRACKER_DIR", str(tmp_path / "trackers"))
    _clear_caches()
    yield url
    if gen is not None:
        for _ in gen:
            pass


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Prefect server, the deployments from prefect.yaml and one process worker, over
    a SQLite store. The tests talk to it through the CLI, as operations staff do. The worker
    starts each flow run as production does: forked from a warm interpreter (ops.launcher)."""
    from ops.production import LAUNCHER_COMMAND, PRODUCTION_ENV
    from ops.stack import Stack, free_port
    from tasks.store.migrate import upgrade

    base = tmp_path_factory.mktemp("stack")
    url = f"sqlite:///{base / 'store.sqlite'}"
    env = {
        "CASETRANSFER_DATABASE_URL": url,
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # shares the built postcode index
        "CASETRANSFER_TODAY": TODAY.isoformat(),
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
        # A resumed run waits for the worker's next poll: production polls every second too.
        "PREFECT_WORKER_QUERY_SECONDS": PRODUCTION_ENV["PREFECT_WORKER_QUERY_SECONDS"],
    }
    upgrade(url)
    stack = Stack(home=base / "prefect", port=free_port(), env=env, engine_command=LAUNCHER_COMMAND, prefork=True)
    saved = {k: os.environ.get(k) for k in [*env, "PREFECT_API_URL", "PREFECT_HOME"]}
    try:
        stack.start_server()
        stack.deploy()
        stack.start_worker()
        os.environ.update(env)
        os.environ["PREFECT_API_URL"] = stack.api_url
        os.environ["PREFECT_HOME"] = str(stack.home)
        yield stack
    finally:
        from support.waits import drain_prefect_workers, prefect_api

        with prefect_api(stack):
            drain_prefect_workers()
        stack.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(autouse=True)
def _a_live_worker(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test on the shared stack starts with a live worker: one that died in an earlier test (a
    kill on purpose, or Prefect 3.8.8's worker exiting on a run that turned Paused as it proposed
    Pending) would otherwise time out every test after it."""
    if "prefect_stack" in request.fixturenames:
        stack = request.getfixturevalue("prefect_stack")
        stack.workers[:] = [w for w in stack.workers if w.poll() is None]
        if not stack.workers:
            stack.start_worker()
    yield


@pytest.fixture
def real_mailboxes(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """<data_dir>/spocs.d/ mailboxes for the PDUs the mail tests send to, as a region would configure them
    (example mailboxes are never mailed through SMTP)."""
    from support.smtp import REAL_PDUS

    folder = tmp_path / "data" / "spocs.d"
    folder.mkdir(parents=True)
    entries = {
        code: {"mailbox": f"transfers.{code.lower()}@probation.test", "role": "SPO", "example": False} for code in REAL_PDUS
    }
    (folder / "test.yaml").write_text(yaml.safe_dump({"spocs": entries}))
    monkeypatch.setenv("CASETRANSFER_DATA_DIR", str(tmp_path / "data"))
    reset_settings()


# With pytest-xdist (scripts/test.sh runs two workers), every test on one stack runs in the same
# worker, so each stack is started once per run; the other worker takes the rest meanwhile. (Two
# embedded stacks, one per worker, were slower on 2 cores: both are CPU-bound.) The proxied profile
# (test_who_is_acting.py) shares the production stack's worker: two production profiles at once
# would hold most of PostgreSQL's 100 connections.
STACK_GROUPS = {"prefect_stack": "prefect-stack", "production_stack": "production-stack", "proxied": "production-stack"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, group in STACK_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break

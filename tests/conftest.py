"""Shared fixtures: a real store (SQLite and PostgreSQL), and a real Prefect stack."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def _pg_connect(url: str) -> Any:
    """An autocommit connection to the database at `url` (an SQLAlchemy psycopg URL)."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(plain, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - CI starts PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {plain}: {exc}")


def _pg_admin() -> Any:
    return _pg_connect(PG_ADMIN_URL)


# The first NSI id of the shared stack's store (see prefect_stack).
STACK_FIRST_NSI_ID = 500001


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
def prefect_stack(tmp_path_factory: pytest.TempPathFactory, migrated_pg_template: str) -> Iterator[Any]:
    """A real Prefect server, the deployments from prefect.yaml and one process worker, with
    Prefect's database and the stack's store on PostgreSQL, as in production. The tests talk to
    it through the CLI, as operations staff do. The worker starts each flow run as production
    does: forked from a warm interpreter (ops.launcher).

    Why PostgreSQL for Prefect too: on SQLite its services (event persister, triggers) and the
    API take turns at one write lock; after some hundreds of runs a step waited seconds on
    "database is locked" retries, and the last tests of a run went four times slower than alone.
    """
    base = tmp_path_factory.mktemp("stack")
    tag = uuid.uuid4().hex[:10]
    prefect_db, store_db = f"ct_prefect_{tag}", f"ct_stack_{tag}"
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{prefect_db}"')
    admin.execute(f'CREATE DATABASE "{store_db}" TEMPLATE "{migrated_pg_template}"')
    url = _pg_url(store_db)
    # Tests with a store of their own (privacy, retention) raise on this server too, from
    # CT000001: the stack's references start far from theirs, so no run tag names two transfers.
    with _pg_connect(url) as conn:
        conn.execute(f"ALTER SEQUENCE nsi_id_seq RESTART WITH {STACK_FIRST_NSI_ID}")
    env = stack_env(base, url)
    server_env = {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": _pg_url(prefect_db).replace("+psycopg", "+asyncpg"),
        # Three of these stacks and the production profile's share PostgreSQL's 100 connections.
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "5",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "5",
    }
    saved = {k: os.environ.get(k) for k in [*env, "PREFECT_API_URL", "PREFECT_HOME"]}
    try:
        with served_stack(base, env, server_env) as stack:
            os.environ.update(env)
            os.environ["PREFECT_API_URL"] = stack.api_url
            os.environ["PREFECT_HOME"] = str(stack.home)
            yield stack
    finally:
        from tasks.store.session import get_engine

        get_engine.cache_clear()
        for name in (prefect_db, store_db):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def embedded_default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The embedded default as `scripts/up.sh` starts it: Prefect's database and the store on
    SQLite. Its test points itself at it (test_embedded_default_flow.py); nothing else uses it."""
    from tasks.store.migrate import upgrade

    base = tmp_path_factory.mktemp("embedded")
    url = f"sqlite:///{base / 'store.sqlite'}"
    upgrade(url)
    with served_stack(base, stack_env(base, url), {}) as stack:
        yield stack


def stack_env(base: Path, store_url: str) -> dict[str, str]:
    """What a test stack's worker and flow runs are told (and this process, for the shared one)."""
    from ops.production import PRODUCTION_ENV

    return {
        "CASETRANSFER_DATABASE_URL": store_url,
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # shares the built postcode index
        "CASETRANSFER_TODAY": TODAY.isoformat(),
        "CASETRANSFER_OUTBOX": str(base / "outbox"),
        # A resumed run waits for the worker's next poll: production polls every second too.
        "PREFECT_WORKER_QUERY_SECONDS": PRODUCTION_ENV["PREFECT_WORKER_QUERY_SECONDS"],
    }


@contextmanager
def served_stack(base: Path, env: dict[str, str], server_env: dict[str, str]) -> Iterator[Any]:
    """A server, the deployments and one worker (flow runs forked from a warm interpreter, as in
    production); stopped at the end, after this process's Prefect log and event workers drain."""
    from support.waits import drain_prefect_workers, prefect_api

    from ops.production import LAUNCHER_COMMAND
    from ops.stack import Stack, free_port

    stack = Stack(
        home=base / "prefect", port=free_port(), env=env, server_env=server_env, engine_command=LAUNCHER_COMMAND, prefork=True
    )
    try:
        stack.start_server()
        stack.deploy()
        stack.start_worker()
        yield stack
    finally:
        with prefect_api(stack):
            drain_prefect_workers()
        stack.stop()


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


# With pytest-xdist (scripts/test.sh runs four workers), the tests on a stack are kept in one
# worker (a group), so each stack is started once per worker that runs them. The tests on the
# embedded stack spend most of their time waiting on flow runs (a worker's poll, a fork, a step),
# not on the CPU: split three ways, three stacks wait at once, each in a worker of its own, and
# the fourth worker takes the production profile and then the unit and store tests. Groups are
# whole files (a file's tests share its fixtures and order), balanced by their measured times.
# A file not listed below joins prefect-stack-a. The proxied profile (test_who_is_acting.py) shares
# the production stack's worker, and each is module-scoped, so they run one after the other: two
# production profiles at once, beside three embedded stacks, held 96-101 of PostgreSQL's 100
# connections.
PREFECT_STACK_GROUPS = {
    "prefect-stack-a": ("test_privacy", "test_concurrent_flow", "test_answer_races", "test_retention", "test_notices"),
    "prefect-stack-b": (
        "test_dead_worker", "test_case_transfer_flow", "test_moving_again_flow", "test_changes_flow", "test_import_flow",
        "test_prefect_contract", "test_work_tags_flow",
    ),
    "prefect-stack-c": (
        "test_youth_flow", "test_continuity_flow", "test_youth_information_flow", "test_concerns_flow",
        "test_temporary_move_flow", "test_tracker", "test_reminders",
    ),
}  # fmt: skip
OTHER_STACK_GROUPS = {
    "production_stack": "production-stack",
    "proxied": "production-stack",
    "embedded_default_stack": "embedded-default",
}


def stack_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that needs a stack; None for one that needs none."""
    fixtures = getattr(item, "fixturenames", ())
    if "prefect_stack" in fixtures:
        module = Path(str(item.fspath)).stem
        return next((g for g, files in PREFECT_STACK_GROUPS.items() if module in files), "prefect-stack-a")
    return next((g for fixture, g in OTHER_STACK_GROUPS.items() if fixture in fixtures), None)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = stack_group(item)
        if group is not None:
            # Only here: xdist joins a test's several group marks into a group of its own
            # ("production-stack_proxied-production" ran beside test_faults, 101 connections).
            assert item.get_closest_marker("xdist_group") is None, f"{item.nodeid}: its stack group is set in conftest.py"
            item.add_marker(pytest.mark.xdist_group(group))

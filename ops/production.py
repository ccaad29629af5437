"""`casetransfer up-production`: the production profile on one machine that has PostgreSQL.

The Prefect server keeps its own state (flow runs, suspended steps, their forms) in a PostgreSQL
database, the domain store is another PostgreSQL database, and several process workers serve the
`casetransfer` work pool, so a worker can die (or be upgraded) while the others carry on.

Everything here is plain configuration around ops.stack.Stack; the benchmark (bench/load.py)
and the fault tests (tests/integration/test_faults.py) build the same stack through
`start_production`, so what is measured and tested is what `up-production` starts.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops.credential import AUTH_ENV, AUTH_FILE_ENV, api_credential, auth_file
from ops.proxy import Proxy, proxy_from_settings
from ops.stack import Stack, process_alive, stop_started
from tasks.settings import get_settings

Say = Callable[[str], None]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
PREFECT_DB = "casetransfer_prefect"
STORE_DB = "casetransfer"

# Worker and flow-run settings for the profile. A resumed transfer waits for a worker's next
# poll before its process starts, so the poll interval is a direct part of every step's latency;
# one poll per worker per second is a trivial load on the server.
PRODUCTION_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
}
# The server's pause-expiry service reads every suspended run, every 5 s by default, in the
# API's own event loop: with 1,000 transfers waiting that stalls the API ~0.35 s each time, with
# 10,000 for seconds. A waiting step times out after a year (suspend_timeout_days), so checking
# hourly fails an abandoned run at most an hour late.
PRODUCTION_SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "3600",
    # Each server process keeps this many PostgreSQL connections open. With Prefect's default
    # (5, and 10 more opened and closed as needed) ten steps in flight kept opening connections,
    # and asyncpg reads the type catalogue on every new one: a third of PostgreSQL's CPU at 10,000
    # held transfers. Three processes at 10 + 5 stay well under PostgreSQL's default 100.
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "10",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "5",
}
# How a worker starts each flow run (every waiting step of a transfer is a new one):
#   prefork: forked from a warm interpreter next to the worker (ops.launcher), the default;
#   direct:  a new interpreter running the engine, skipping the workspace-supervisor interpreter
#            Prefect puts in between by default (ops.stack.Stack.engine_command);
#   default: Prefect's own (supervisor, then engine).
ENGINE_COMMAND = shlex.join([sys.executable, "-m", "prefect.engine"])
# By path, not `-m ops.launcher`: the worker starts runs in a scratch directory, where the
# project is importable only if it is installed; the per-run side needs only the standard library.
LAUNCHER_COMMAND = shlex.join([sys.executable, str(Path(__file__).with_name("launcher.py"))])
STARTS = {"prefork": LAUNCHER_COMMAND, "direct": ENGINE_COMMAND, "default": None}


@dataclass(frozen=True)
class ProductionUrls:
    """Where the two databases live: Prefect's (asyncpg, as the server needs) and the store's."""

    prefect: str
    store: str


def _with_db(url: str, driver: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername=driver, database=database).render_as_string(hide_password=False)


def production_urls(pg: str = DEFAULT_PG, prefect_db: str = PREFECT_DB, store_db: str = STORE_DB) -> ProductionUrls:
    """The two database URLs on one PostgreSQL server (any database in `pg` is replaced)."""
    return ProductionUrls(
        prefect=_with_db(pg, "postgresql+asyncpg", prefect_db), store=_with_db(pg, "postgresql+psycopg", store_db)
    )


def ensure_database(url: str) -> bool:
    """Create the database that `url` names unless it exists; True when it was created."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"{url}: names no database")
    # Connect to the maintenance database of the same server: the target may not exist yet.
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    """Drop a database (tests and benchmarks clean up after themselves)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.database or "")))


CLAIM_KEY = "casetransfer:claimed-by"


def claim_redis_db(url: str = DEFAULT_REDIS) -> str:
    """A Redis database of its own for a stack that lives and dies with this process (tests and
    benchmarks): Prefect's streams have fixed key names, so two stacks on one database would read
    each other's events. Claims the first database (1-15) that is unclaimed or whose claimant has
    died, empties it, and returns `url` naming it; `release_redis_db` gives it back."""
    import redis

    for db in range(1, 16):
        # The URL's own database would win over a `db=` argument: name the database in the URL.
        client = redis.Redis.from_url(_with_redis_db(url, db))
        try:
            owner = client.get(CLAIM_KEY)
            if owner is not None and process_alive(int(owner)):
                continue
            client.flushdb()
            if client.set(CLAIM_KEY, os.getpid(), nx=True):
                return _with_redis_db(url, db)
        finally:
            client.close()
    raise RuntimeError(f"{url}: no free Redis database among 1-15")


def release_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _with_redis_db(url: str, db: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))




def production_stack(
    home: Path,
    port: int,
    urls: ProductionUrls,
    env: dict[str, str] | None = None,
    start: str = "prefork",
    redis_url: str | None = DEFAULT_REDIS,
    engine_port: int | None = None,
    auth_string: str | None = None,
    proxy: Proxy | None = None,
    worker_nice: int = 10,
) -> Stack:
    """A Stack whose server runs on PostgreSQL and whose workers and flow runs use the PostgreSQL
    store. With `redis_url` (the default), in Prefect's multi-server layout: the API for people on
    `port`, the services in their own process, and (with `engine_port`) a second API for the
    workers and flow runs; `redis_url=None` runs one server process that does everything."""
    if start not in STARTS:
        raise ValueError(f"start: one of {', '.join(STARTS)}, not {start!r}")
    if engine_port is not None and redis_url is None:
        raise ValueError("engine_port: a second API server needs Redis (redis_url) to share events")
    return Stack(
        home=home,
        port=port,
        env={**PRODUCTION_ENV, "CASETRANSFER_DATABASE_URL": urls.store, **(env or {})},
        server_env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": urls.prefect, **PRODUCTION_SERVER_ENV},
        worker_nice=worker_nice,
        engine_nice=5,
        server_gc_freeze=True,
        engine_command=STARTS[start],
        prefork=start == "prefork",
        redis_url=redis_url,
        engine_port=engine_port,
        auth_string=auth_string,
        proxy=proxy,
    )


def start_production(
    home: Path,
    port: int,
    urls: ProductionUrls,
    workers: int = 2,
    env: dict[str, str] | None = None,
    start: str = "prefork",
    redis_url: str | None = DEFAULT_REDIS,
    engine_port: int | None = None,
    auth_string: str | None = None,
    proxy: Proxy | None = None,
    worker_nice: int = 10,
) -> Stack:
    """Create the databases if missing, migrate the store, start the server, register the
    deployments and start `workers` workers. The caller stops the stack. With `auth_string`
    every API server asks for it (basic auth, CSRF on) and every worker gives it. With `proxy`,
    nginx signs people in (ops/proxy.py) and the people's API takes `auth_string` as the stack's own
    service identity only."""
    from tasks.store.migrate import upgrade

    if workers < 1:
        raise ValueError("workers: at least one")
    ensure_database(urls.prefect)
    ensure_database(urls.store)
    upgrade(urls.store)
    stack = production_stack(home, port, urls, env, start, redis_url, engine_port, auth_string, proxy, worker_nice)
    try:
        stack.start_server(timeout=180)  # a new database is migrated first, which takes a while
        stack.deploy()
        for i in range(workers):
            stack.start_worker(f"{socket.gethostname()}-{i + 1}")
    except BaseException:
        stack.stop()
        raise
    return stack


def _state_file() -> Path:
    return get_settings().data_dir / "stack-production.json"


def bring_up_production(
    port: int, workers: int, pg: str, say: Say, redis: str = DEFAULT_REDIS, engine_port: int | None = None
) -> None:
    """Start (or top up) the production profile and print how to use it."""
    urls, home, auth_string, auth_source = _prepare(pg, say)
    engine_port = engine_port or port + 1
    proxy = proxy_from_settings(home)
    if proxy is not None and proxy.mode == "local" and not proxy.htpasswd.exists():
        raise RuntimeError(f"auth_mode local: no accounts in {proxy.htpasswd}: add one with `python -m ops.proxy add-account SIGNIN`")
    stack = production_stack(home, port, urls, redis_url=redis, engine_port=engine_port, auth_string=auth_string, proxy=proxy)
    saved = json.loads(_state_file().read_text()) if _state_file().exists() else {}
    try:
        answering = httpx.get(f"{stack.api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        answering = False
    server_pids = [pid for pid in saved.get("servers", []) if process_alive(pid)]
    if answering and not (server_pids and saved.get("port") == port):
        raise RuntimeError(f"something else answers on port {port} (`casetransfer up`'s server?): stop it or pass --port")
    if not answering:
        say("starting the Prefect API servers and services on PostgreSQL and Redis (a new database is migrated first)...")
        stack.start_server(timeout=180)
        server_pids = [p.pid for p in [*stack.server_processes, *([stack.proxy_process] if stack.proxy_process else [])]]
        if proxy is not None:
            say(f"nginx in front ({proxy.mode} sign-in, TLS): logs and configuration in {proxy.folder}")
    say("registering the deployments from prefect.yaml...")
    stack.deploy()
    worker_pids = [pid for pid in saved.get("workers", []) if process_alive(pid)] if saved.get("port") == port else []
    while len(worker_pids) < workers:
        worker_pids.append(stack.start_worker(f"{socket.gethostname()}-{len(worker_pids) + 1}").pid)
    _state_file().write_text(json.dumps({"servers": server_pids, "workers": worker_pids, "port": port}))
    say(
        f"{len(worker_pids)} workers running (API for workers and flow runs: {stack.engine_api_url}); logs in {stack.home / 'logs'}"
    )
    say("")
    ui = stack.child_env()["CASETRANSFER_UI_URL"]
    if proxy is None:
        say(f"[bold]Prefect UI: {ui}[/]")
    else:
        say(f"[bold]Prefect UI: {ui}[/] (each person signs in; port {port} answers only nginx and the stack itself)")
    say("Point the CLI (and workers on other machines) at this profile:")
    say(f"  export PREFECT_API_URL={stack.api_url}")
    say(f"  export CASETRANSFER_UI_URL={ui}   # the links in `status` and in the emails the CLI sends")
    say(f"  export CASETRANSFER_DATABASE_URL={_hide_password(urls.store)}")
    say("  export CASETRANSFER_ACTOR_FROM=os_account   # the CLI records who runs it (config/staff/people.yaml os_accounts)")
    say(f"  the CLI reads the API credential from {auth_source}; elsewhere set PREFECT_API_AUTH_STRING from it")
    say("Stop it with: casetransfer down-production")


def _prepare(pg: str, say: Say) -> tuple[ProductionUrls, Path, str, str]:
    """The databases (created if missing), the store migrated, the postcode index and the API
    credential: what the profile needs before any of its processes starts."""
    from tasks.places.locator import build_index
    from tasks.store.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    urls = production_urls(pg)
    if settings.database_url.startswith("postgresql"):
        urls = ProductionUrls(prefect=urls.prefect, store=settings.database_url)  # the operator named the store
    for url in (urls.prefect, urls.store):
        say(("created " if ensure_database(url) else "using ") + _hide_password(url))
    upgrade(urls.store)
    say(f"postcode index: {build_index()}")
    home = settings.data_dir / "prefect-production"
    auth_string, auth_source = api_credential(auth_file(home))
    say(f"API credential: basic auth from {auth_source}; CSRF protection on")
    return urls, home, auth_string, auth_source


def write_systemd_units(
    directory: Path, port: int, workers: int, pg: str, say: Say, redis: str = DEFAULT_REDIS, engine_port: int | None = None
) -> list[Path]:
    """Prepare the profile as bring_up_production does, and write its processes as systemd units
    into `directory` instead of starting them (ops/systemd.py); print how to install them."""
    from ops.systemd import write_units

    if workers < 1:
        raise ValueError("workers: at least one")
    if os.environ.get(AUTH_ENV):
        raise ValueError(f"--systemd: the units load the credential from a file; give it by {AUTH_FILE_ENV}, not {AUTH_ENV}")
    urls, home, auth_string, auth_source = _prepare(pg, say)
    proxy = proxy_from_settings(home)
    stack = production_stack(
        home, port, urls, redis_url=redis, engine_port=engine_port or port + 1, auth_string=auth_string, proxy=proxy
    )
    written = write_units(directory, stack, workers, Path(auth_source).resolve())
    if proxy is not None:
        say(f"nginx in front ({proxy.mode} sign-in, TLS) as casetransfer-proxy.service; people sign in at {proxy.url}")
    say(f"wrote {len(written)} files into {directory} (the credential stays in {auth_source}, loaded by each unit)")
    say("Install and start them (as root; docs/production.md says more):")
    say(f"  cp {directory}/*.service {directory}/*.target /etc/systemd/system/ && systemctl daemon-reload")
    say(f"  (the units read their environment from {directory}/*.env: keep that folder where it is)")
    say("  systemctl enable --now casetransfer.target")
    return written


def take_down_production(say: Say) -> None:
    path = _state_file()
    if not path.exists():
        say("nothing to stop")
        return
    state = json.loads(path.read_text())
    workers = [("worker", p) for p in state.get("workers", [])]
    stop_started(path, [*workers, *(("server", p) for p in state.get("servers", [state.get("server")]))], say)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

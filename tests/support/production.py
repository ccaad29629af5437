"""The production profile for a test session: its own PostgreSQL databases and Redis database,
started by ops.production.start_production as `up-production` starts it, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Production:
    stack: Any  # ops.stack.Stack
    store_url: str
    env: dict[str, str]  # what a CLI pointed at it needs, PREFECT_API_AUTH_STRING included


@contextmanager
def running_production(pg_admin_url: str, base: Path, env: dict[str, str], **start: Any) -> Iterator[Production]:
    """start_production with a fresh credential and databases named after a random tag; `start`
    goes to it as given (workers, proxy...). Fails the test session plainly when it cannot start."""
    import pytest

    from ops.production import claim_redis_db, drop_database, production_urls, release_redis_db, start_production
    from ops.stack import free_port

    tag = uuid.uuid4().hex[:8]
    urls = production_urls(pg_admin_url, prefect_db=f"ct_prefect_{tag}", store_db=f"ct_store_{tag}")
    redis_url = claim_redis_db()
    auth_string = f"casetransfer:{uuid.uuid4().hex}"
    try:
        stack = start_production(
            base / "prefect", free_port(), urls, env=env, redis_url=redis_url, engine_port=free_port(), auth_string=auth_string,
            **start,
        )  # fmt: skip
    except Exception as exc:  # pragma: no cover - CI starts PostgreSQL and Redis
        for url in (urls.prefect, urls.store):
            drop_database(url)
        release_redis_db(redis_url)
        pytest.fail(f"the production profile did not start: {exc}")
    try:
        yield Production(stack, urls.store, {**env, "CASETRANSFER_DATABASE_URL": urls.store, "PREFECT_API_AUTH_STRING": auth_string})
    finally:
        stack.stop()
        for url in (urls.prefect, urls.store):
            drop_database(url)
        release_redis_db(redis_url)


def local_proxy(folder: Path, accounts: dict[str, str]) -> Any | None:
    """nginx in `local` mode for a test stack (TLS with a self-signed pair, one htpasswd account
    per sign-in), or None where nginx is not installed."""
    from ops.proxy import Proxy, add_account, nginx_binary
    from ops.stack import free_port

    if nginx_binary() is None:
        return None
    proxy = Proxy(
        mode="local", folder=folder, host="127.0.0.1", port=free_port(), cert=folder / "tls.crt", key=folder / "tls.key",
        htpasswd=folder / "htpasswd", secret_file=folder / "secret", sso_auth_url="", sso_user_header="",
    )  # fmt: skip
    for signin, password in accounts.items():
        add_account(proxy.htpasswd, signin, password)
    return proxy


@contextmanager
def pointed_at(production: Production, mp: Any) -> Iterator[Production]:
    """Point this process (and the CLI subprocesses it starts) at a production stack, through the
    pytest MonkeyPatch `mp`: the environment for the subprocesses, Prefect's settings for this
    process (it reads them once per process)."""
    from conftest import _clear_caches
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    for key, value in production.env.items():
        mp.setenv(key, value)
    mp.setenv("PREFECT_API_URL", production.stack.api_url)
    mp.setenv("PREFECT_HOME", str(production.stack.home))
    _clear_caches()
    auth = production.env["PREFECT_API_AUTH_STRING"]
    with temporary_settings({PREFECT_API_URL: production.stack.api_url, PREFECT_API_AUTH_STRING: auth}):
        yield production

"""The Prefect REST API over plain HTTP, for the stacks (ops/stack.py): the dead-worker
automations and the work pool's command, sent to the stack being started with its own address
and credential rather than through this process's Prefect settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from prefect_runs.internals import CSRF_CLIENT_HEADER, CSRF_TOKEN_HEADER, CSRF_TOKEN_PATH

# By name, because the automations and recover-transfers' own follow-up runs start it before
# anything here knows its id.
RECOVER_DEPLOYMENT = "recover-transfers/recover-transfers"


@contextmanager
def api_client(api_url: str, auth_string: str | None = None) -> Iterator[httpx.Client]:
    """A plain HTTP client for the API that authenticates as Prefect's own client does: basic auth
    with `auth_string` ("user:password"), and the CSRF token a server with protection on asks for
    on every request that changes something (the handshake is Prefect's client's: prefect_runs/internals.py)."""
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    with httpx.Client(base_url=api_url, timeout=30, auth=auth) as http:  # type: ignore[arg-type]
        if auth_string:
            client_id = str(uuid.uuid4())
            token = http.get(CSRF_TOKEN_PATH, params={"client": client_id})
            if token.status_code == 200:  # 422: this server has CSRF protection off
                http.headers.update({CSRF_TOKEN_HEADER: token.json()["token"], CSRF_CLIENT_HEADER: client_id})
        yield http

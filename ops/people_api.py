"""The people's API server behind the proxy (auth_mode local or sso; ops/proxy.py): Prefect's own
app, as `prefect server start` builds and serves it, inside a small ASGI middleware that decides
who is acting (issue 28).

    python -m ops.people_api --host 127.0.0.1 --port 4200 [--no-services] [--gc-freeze]

- A request must come from the proxy (its secret, CASETRANSFER_PROXY_SECRET_FILE) naming a person
  on the staff list, or carry the service credential (CASETRANSFER_SERVICE_AUTH_STRING, basic
  auth: `deploy`, the CLI on the server, anything else of the stack's own). Otherwise 401; a
  person not on the staff list 403. Health checks are open, as Prefect's own auth leaves them.
- A person's Resume of a flow run waiting for a transfer's task is let through only when the
  task's owner role in that PDU is theirs (tasks/domain/acting.py), else 403 with the reason;
  its `recorded_by` becomes the signed-in person. A Run of a deployment the same, by the
  deployment's owners in config/access.yaml and the NSI its `reference` names.
- A person's reads pass (GETs, and the POSTs Prefect reads with: filters, counts, histories);
  so does saving a view of the runs list. Any other change (cancelling a run, setting its state,
  creating a run or writing its input directly, editing a deployment, emitting events) is ops'
  only: a cancelled run is a transfer silently stalled. The service identity is ops', and is not
  rewritten: what it records is the CLI's to say.

Prefect's basic auth is off in this process (the UI would ask every person for the shared
password); the check above replaces it. CSRF protection stays on: a browser sends the proxy's
credentials by itself.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tasks.domain.staff import Decision, StaffList, StaffMember, load_staff
from tasks.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICE_AUTH_ENV = "CASETRANSFER_SERVICE_AUTH_STRING"
SECRET_FILE_ENV = "CASETRANSFER_PROXY_SECRET_FILE"
USER_HEADER = b"x-casetransfer-user"
SECRET_HEADER = b"x-casetransfer-proxy-secret"
OPEN_PATHS = ("/api/health", "/api/ready")
RESUME = re.compile(r"^/api/flow_runs/([0-9a-fA-F-]{36})/resume/?$")
RUN = re.compile(r"^/api/deployments/([0-9a-fA-F-]{36})/create_flow_run/?$")
# Prefect's reads that travel as POSTs (the UI's lists, counts, histories and form checks): a
# person may make them. Every other POST, PATCH, PUT or DELETE but Resume, Run and saving a view
# is ops' (tests/unit/test_people_api_calls.py holds this against Prefect's own routes).
READ_POST = re.compile(
    r"^/api/(?:[a-z0-9_{}:-]+/)*(?:filter|count|paginate|history|lateness|count-by/[a-z_]+|next-runs"
    r"|count-deployments|count-task-runs|counts|validate|concurrency_status|get_runs)/?$"
)
SAVED_VIEW = re.compile(r"^/api/saved_searches/(?:[0-9a-fA-F-]{36})?$")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# What the UI listens to; the others are the workers' and clients' (emitting events, polling).
READ_SOCKETS = ("/api/events/out", "/api/logs/out")

logger = logging.getLogger("casetransfer.people_api")


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class StaffFile:
    """The staff list, read again when its file changes (a person added needs no restart)."""

    def __init__(self, path: Path | None = None):
        from tasks.domain.staff import PEOPLE_FILE

        self.path = path or PEOPLE_FILE
        self._seen: tuple[float, StaffList] | None = None

    def get(self) -> StaffList:
        mtime = self.path.stat().st_mtime
        if self._seen is None or self._seen[0] != mtime:
            self._seen = (mtime, load_staff(self.path))
        return self._seen[1]


async def deployment_name(deployment_id: str) -> str | None:
    """The deployment's name, read from Prefect's database in this process."""
    from uuid import UUID

    from prefect.server import models
    from prefect.server.database import provide_database_interface

    async with provide_database_interface().session_context() as session:
        found = await models.deployments.read_deployment(session=session, deployment_id=UUID(deployment_id))
    return found.name if found is not None else None


class WhoIsActing:
    """The ASGI middleware: see the module's docstring."""

    def __init__(self, app: App, secret: str, service_auth: str, staff: StaffFile | None = None, allow_examples: bool = False):
        if not secret or not service_auth:
            raise ValueError("WhoIsActing: both the proxy's secret and the service credential are needed")
        self.app, self.secret, self.service_auth = app, secret.encode(), service_auth
        self.staff = staff or StaffFile()
        self.allow_examples = allow_examples

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan
        if scope["type"] == "http" and scope["path"] in OPEN_PATHS and scope["method"] == "GET":
            return await self.app(scope, receive, send)
        try:
            person = self.identify(dict(scope["headers"]))
            if person is not None and scope["type"] == "websocket" and scope["path"] not in READ_SOCKETS:
                _allowed(may_call(person, "websocket", scope["path"]))
            elif person is not None and scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
                receive = await self.checked(scope, receive, person)
        except Refused as refused:
            logger.warning("refused %s %s: %s", scope.get("method", "websocket"), scope["path"], refused.reason)
            return await self.refuse(scope, send, refused)
        await self.app(scope, receive, send)

    def identify(self, headers: dict[bytes, bytes]) -> StaffMember | None:
        """The signed-in person; None for the service credential; Refused otherwise."""
        given = headers.get(SECRET_HEADER)
        if given is not None and hmac.compare_digest(given, self.secret):
            signin = headers.get(USER_HEADER, b"").decode("utf-8", "replace").strip()
            person = self.staff.get().by_signin(signin) if signin else None
            if person is None:
                raise Refused(403, f"{signin or 'nobody'} is signed in but not on the staff list (config/staff/people.yaml)")
            if person.example and not self.allow_examples:
                raise Refused(403, f"{signin} is an example person; set allow_example_staff to let examples in (demo only)")
            return person
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(token, validate=True).decode("utf-8")
            except ValueError:
                decoded = ""
            if hmac.compare_digest(decoded.encode(), self.service_auth.encode()):
                return None
        raise Refused(401, "sign in through the proxy: this API answers only requests it sends")

    async def checked(self, scope: Scope, receive: Receive, person: StaffMember) -> Receive:
        """For a Resume or a Run: decide, and give the app the body with the actor put in."""
        from anyio import to_thread

        from tasks.domain import acting

        post = scope["method"] == "POST"
        resume, run = (RESUME.match(scope["path"]), RUN.match(scope["path"])) if post else (None, None)
        if not (resume or run):
            decision = may_call(person, scope["method"], scope["path"])
            _allowed(decision)
            if decision.as_ops:
                logger.info("%s %s: %s", scope["method"], scope["path"], decision.reason)
            return receive
        body = await _read_body(receive)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return _replay(body, receive)  # Prefect answers a body it cannot read
        if not isinstance(doc, dict):
            return _replay(body, receive)
        if resume:
            owned = await to_thread.run_sync(acting.waiting_for, resume.group(1))
            decision = acting.may_resume(person, owned)
            _allowed(decision)
            answer = doc.get("run_input")
            if isinstance(answer, dict):
                answer["recorded_by"] = acting.actor_words(person, answer.get("recorded_by"), decision)
        else:
            name = await deployment_name(run.group(1)) if run else None
            if name is None:
                return _replay(body, receive)  # Prefect answers 404
            parameters = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
            decision = await to_thread.run_sync(acting.may_run, person, name, parameters)
            _allowed(decision)
            rule = acting.deployment_rules().get(name)
            if rule is not None:
                typed = acting.get_dotted(parameters, rule.by)
                acting.set_dotted(
                    parameters, rule.by, acting.actor_words(person, typed if isinstance(typed, str) else None, decision)
                )
                doc["parameters"] = parameters
        logger.info("%s: %s", scope["path"], decision.reason)
        new_body = json.dumps(doc).encode()
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
            (b"content-length", str(len(new_body)).encode())
        ]
        return _replay(new_body, receive)

    @staticmethod
    async def refuse(scope: Scope, send: Send, refused: Refused) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused.reason[:120]})
            return
        body = json.dumps({"detail": refused.reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def may_call(person: StaffMember, method: str, path: str) -> Decision:
    """A person's call other than a Resume or a Run: a read, saving a view, or ops' to make."""
    from tasks.domain import acting

    if (method == "POST" and READ_POST.match(path)) or (method in ("PUT", "DELETE") and SAVED_VIEW.match(path)):
        return Decision(True, "a read")
    return acting.may_change_engine(person, f"{method} {path.removeprefix('/api')}")


def _allowed(decision: Decision) -> None:
    if not decision.allowed:
        raise Refused(403, decision.reason)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def main(argv: list[str] | None = None) -> None:
    """Serve Prefect's app as `prefect server start` does (one process), inside WhoIsActing."""
    parser = argparse.ArgumentParser(prog="python -m ops.people_api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-services", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", help="as ops.prefect_frozen: modules out of the GC's full passes")
    args = parser.parse_args(argv)
    secret = Path(os.environ[SECRET_FILE_ENV]).read_text().strip()
    service_auth = os.environ[SERVICE_AUTH_ENV]

    import prefect
    import prefect.settings as ps
    import uvicorn
    from prefect.server.api.server import create_app

    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    # The settings `prefect server start` sets around its app (prefect/cli/server.py), from the same sources.
    server_settings = {
        ps.PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED: str(ps.PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED.value()),
        ps.PREFECT_SERVER_ANALYTICS_ENABLED: str(ps.PREFECT_SERVER_ANALYTICS_ENABLED.value() and not args.no_services),
        ps.PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: str(ps.PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED.value()),
        ps.PREFECT_SERVER_UI_ENABLED: str(ps.PREFECT_SERVER_UI_ENABLED.value()),
        ps.PREFECT_SERVER_LOGGING_LEVEL: ps.PREFECT_SERVER_LOGGING_LEVEL.value(),
    }
    logging.basicConfig(level=logging.INFO)
    with ps.temporary_settings(server_settings):
        app = create_app(final=True, webserver_only=args.no_services)
        uvicorn.run(
            app=WhoIsActing(app, secret, service_auth, allow_examples=get_settings().allow_example_staff),
            app_dir=str(prefect.__module_path__.parent),
            host=args.host,
            port=args.port,
            timeout_keep_alive=ps.PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(),
            ws_ping_interval=ps.PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL.value(),
            ws_ping_timeout=ps.PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT.value(),
            log_level=str(ps.PREFECT_SERVER_LOGGING_LEVEL.value()).lower(),
        )


if __name__ == "__main__":
    main()

"""What a signed-in person may call on Prefect's API besides a Resume and a Run (ops/people_api.py):
reads, and saving a view; every other change is ops'. Held against Prefect's own route list, so a
Prefect upgrade that adds a route is classified here before anyone can call it."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import anyio
import httpx
import pytest

from ops.people_api import WhoIsActing, may_call
from tasks.domain.staff import load_staff

SECRET = "the-proxys-secret-0123456789"
SERVICE = "casetransfer:service-pw"
RUN_ID = str(uuid.uuid4())

# Every non-GET route of Prefect 3.8.8's API a person may call without being ops, and why it is a read.
PEOPLES_CALLS = {
    ("PUT", "/saved_searches/"), ("DELETE", "/saved_searches/{id:uuid}"),  # saving a view of the runs list
    ("POST", "/flow_runs/{id:uuid}/resume"), ("POST", "/deployments/{id:uuid}/create_flow_run"),  # checked by role
    ("POST", "/work_queues/{id:uuid}/get_runs"),  # the work queue page's upcoming runs
    ("POST", "/automations/templates/validate"), ("POST", "/templates/validate"), ("POST", "/ui/schemas/validate"),
    ("POST", "/work_pools/{name}/concurrency_status"), ("POST", "/work_queues/{id:uuid}/concurrency_status"),
    ("POST", "/events/count-by/{countable}"), ("POST", "/flow_runs/lateness"),
    ("POST", "/ui/flows/next-runs"), ("POST", "/ui/flows/count-deployments"), ("POST", "/ui/flow_runs/count-task-runs"),
    ("POST", "/ui/task_runs/dashboard/counts"),
}  # fmt: skip
LISTS = re.compile(r"/(filter|count|paginate|history)$")  # the lists, counts and histories of every kind


def _prefect_routes() -> set[tuple[str, str]]:
    from prefect.server.api.server import API_ROUTERS

    return {
        (method, route.path)
        for router in API_ROUTERS
        for route in router.routes
        for method in getattr(route, "methods", None) or ()
        if method not in ("GET", "HEAD", "OPTIONS")
    }


def _concrete(path: str) -> str:
    """A route's template as a browser would call it."""
    path = re.sub(r"\{[a-z_]+:uuid\}", RUN_ID, path)
    return "/api" + re.sub(r"\{([a-z_]+)(:[a-z]+)?\}", lambda m: "day" if m.group(1) == "countable" else "casetransfer", path)


def _person(signin: str) -> Any:
    person = load_staff().by_signin(signin)
    assert person is not None
    return person


def test_a_person_may_make_prefects_reads_and_save_a_view_and_nothing_else():
    kim = _person("kim.spo")
    routes = _prefect_routes()
    allowed = {(m, p) for m, p in routes if may_call(kim, m, _concrete(p)).allowed}
    checked = {("POST", "/flow_runs/{id:uuid}/resume"), ("POST", "/deployments/{id:uuid}/create_flow_run")}
    expected = {(m, p) for m, p in routes if m == "POST" and LISTS.search(p)} | (PEOPLES_CALLS - checked)
    assert allowed == expected
    assert PEOPLES_CALLS <= routes, "a route named here is no longer Prefect's"


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("POST", "/flow_runs/{id:uuid}/set_state"),  # the UI's Cancel, or a run moved on without its form
        ("POST", "/flow_runs/bulk_set_state"),
        ("POST", "/flow_runs/"),  # a run of a deployment made without its Run's check
        ("POST", "/deployments/{id:uuid}/create_flow_run/bulk"),
        ("POST", "/flow_runs/{id:uuid}/input"),  # an answer written without its Resume's check
        ("DELETE", "/flow_runs/{id:uuid}"),
        ("PATCH", "/deployments/{id:uuid}"),
        ("POST", "/deployments/{id:uuid}/pause_deployment"),
        ("POST", "/events"),
        ("POST", "/work_pools/{name}/get_scheduled_flow_runs"),
    ],
)
def test_a_change_to_the_engine_is_ops_only_and_the_refusal_names_the_call(method, route):
    refused = may_call(_person("kim.spo"), method, _concrete(route))
    assert not refused.allowed
    assert refused.reason.startswith("Only operations staff may ")
    assert refused.reason.endswith(f"({method} {_concrete(route).removeprefix('/api')})")
    ops = may_call(_person("ops.one"), method, _concrete(route))
    assert ops.allowed and ops.as_ops


def test_only_the_uis_own_sockets_are_open_to_a_person():
    kim = _person("kim.spo")
    assert not may_call(kim, "websocket", "/api/events/in").allowed  # emitting events drives automations
    assert not may_call(kim, "websocket", "/api/work_pools/casetransfer/workers/connect").allowed


def _call(method: str, path: str, headers: dict[str, str], body: dict | None = None) -> tuple[httpx.Response, list[str]]:
    """The middleware in front of an app that records what reached it (Prefect stands behind it
    for real in tests/integration/test_who_is_acting.py)."""
    reached: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        reached.append(f"{scope['method']} {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=WhoIsActing(app, SECRET, SERVICE, allow_examples=True))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://people") as client:
            return await client.request(method, path, headers=headers, content=json.dumps(body or {}))

    return anyio.run(go), reached


def _signed_in(signin: str) -> dict[str, str]:
    return {"x-casetransfer-proxy-secret": SECRET, "x-casetransfer-user": signin}


def test_a_persons_cancel_is_refused_before_prefect_sees_it_and_ops_and_the_service_get_through():
    cancel = {"state": {"type": "CANCELLING"}}
    path = f"/api/flow_runs/{RUN_ID}/set_state"
    refused, reached = _call("POST", path, _signed_in("kim.spo"), cancel)
    assert refused.status_code == 403 and reached == []
    assert refused.json()["detail"] == (
        "Only operations staff may cancel a run or change its state. Answer a task with its Resume form; "
        f"end a transfer by running withdraw-transfer. (POST /flow_runs/{RUN_ID}/set_state)"
    )
    for headers in (_signed_in("ops.one"), {"authorization": "Basic " + base64.b64encode(SERVICE.encode()).decode()}):
        passed, reached = _call("POST", path, headers, cancel)
        assert passed.status_code == 200 and reached == [f"POST {path}"]


def test_a_persons_reads_and_saved_view_reach_prefect():
    for method, path in (("POST", "/api/flow_runs/paginate"), ("POST", "/api/ui/flow_runs/history"),
                         ("PUT", "/api/saved_searches/"), ("GET", f"/api/flow_runs/{RUN_ID}")):  # fmt: skip
        passed, reached = _call(method, path, _signed_in("kim.spo"))
        assert passed.status_code == 200 and reached == [f"{method} {path}"]

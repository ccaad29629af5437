"""What a person sees when the Prefect server answers with an error (a locked SQLite database
answers 503): a message naming the answer and exit 1, never a traceback, and nothing stored."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from sqlalchemy import func, select

from tasks.settings import ROOT
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork
from tests.conftest import demo_form


class Unavailable(BaseHTTPRequestHandler):
    """A server that answers every request as a busy Prefect server does."""

    def _answer(self) -> None:
        body = b'{"exception_message": "Service Unavailable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/api"
    server.shutdown()
    server.server_close()


def test_raising_while_the_server_answers_503_exits_1_with_a_message_and_stores_nothing(store_url, unavailable_api, tmp_path):
    path = tmp_path / "form.yaml"
    path.write_text(yaml.safe_dump(demo_form(crn="A100099")))
    env = {
        **os.environ,
        "PREFECT_API_URL": unavailable_api,
        "PREFECT_CLIENT_MAX_RETRIES": "0",  # Prefect's own retries are not what is tested here
        "CASETRANSFER_DATA_DIR": str(ROOT / ".data"),  # the built postcode index
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", "raise", str(path)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1
    assert "The Prefect server did not answer: 503 Service Unavailable" in result.stderr
    assert "Traceback" not in result.stderr
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(func.count(Nsi.id))) == 0

"""`casetransfer up-production --systemd DIR`: the profile's processes as systemd units."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ops.production import ProductionUrls, production_stack
from ops.proxy import Proxy, add_account, nginx_binary, proxy_from_settings
from ops.systemd import cpu_weight, write_units
from tasks.settings import reset_settings

SECRET = "casetransfer:not-in-any-unit-7f3a"


def _written(tmp_path: Path, workers: int = 2, proxy: Proxy | None = None) -> dict[str, str]:
    urls = ProductionUrls(prefect="postgresql+asyncpg://postgres@127.0.0.1/p", store="postgresql+psycopg://postgres@127.0.0.1/s")
    stack = production_stack(tmp_path / "home", 4200, urls, engine_port=4201, auth_string=SECRET, proxy=proxy)
    credential = tmp_path / "api-auth"
    credential.write_text(SECRET + "\n")
    paths = write_units(tmp_path / "units", stack, workers, credential)
    return {p.name: p.read_text() for p in paths}


def test_each_process_of_the_profile_is_a_unit_restarted_on_failure(tmp_path):
    files = _written(tmp_path, workers=3)
    services = {n: t for n, t in files.items() if n.endswith(".service")}
    assert set(services) == {
        "casetransfer-api.service", "casetransfer-services.service", "casetransfer-engine-api.service",
        "casetransfer-deploy.service", "casetransfer-worker-1.service", "casetransfer-worker-2.service",
        "casetransfer-worker-3.service",
    }  # fmt: skip
    for name, text in services.items():
        if name != "casetransfer-deploy.service":
            assert "Restart=on-failure" in text, name
    for name in services:
        assert name in files["casetransfer.target"]
    assert "--port 4200" in services["casetransfer-api.service"]
    assert "--port 4201" in services["casetransfer-engine-api.service"]
    # systemd supervises the workers here: no ops.supervise between it and the worker.
    assert "ops.supervise" not in services["casetransfer-worker-1.service"]
    assert "--name worker-2" in services["casetransfer-worker-2.service"]


def test_cpu_shares_follow_the_niceness_the_stack_gives_each_process(tmp_path):
    files = _written(tmp_path)
    assert cpu_weight(0) == 100 and cpu_weight(5) == 33 and cpu_weight(10) == 11
    assert "CPUWeight=100" in files["casetransfer-api.service"]
    assert "CPUWeight=33" in files["casetransfer-services.service"]
    assert "CPUWeight=33" in files["casetransfer-engine-api.service"]
    assert "CPUWeight=11" in files["casetransfer-worker-1.service"]


def test_the_credential_is_loaded_from_its_file_and_never_written_into_a_unit(tmp_path):
    files = _written(tmp_path)
    for name, text in files.items():
        assert SECRET.split(":")[1] not in text, name
    assert f"LoadCredential=api-auth:{tmp_path / 'api-auth'}" in files["casetransfer-worker-1.service"]
    assert "ops.systemd exec server --" in files["casetransfer-api.service"]
    assert "ops.systemd exec client --" in files["casetransfer-worker-1.service"]
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" in files["casetransfer-server.env"]
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in files["casetransfer-worker.env"]
    assert 'PREFECT_API_URL="http://127.0.0.1:4201/api"' in files["casetransfer-worker.env"]


def _local_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Proxy:
    monkeypatch.setenv("CASETRANSFER_AUTH_MODE", "local")
    reset_settings()
    proxy = proxy_from_settings(tmp_path / "home")
    assert proxy is not None
    add_account(proxy.htpasswd, "kim.spo", "kim-password")
    return proxy


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
def test_with_a_proxy_nginx_is_a_unit_and_the_peoples_api_decides_who_is_acting(tmp_path, monkeypatch):
    proxy = _local_proxy(tmp_path, monkeypatch)
    files = _written(tmp_path, proxy=proxy)
    nginx = files["casetransfer-proxy.service"]
    assert f"ExecStart={nginx_binary()} -c {proxy.folder / 'nginx.conf'}" in nginx and "'daemon off;'" in nginx
    assert "Restart=on-failure" in nginx and "After=" in nginx and "casetransfer-api.service" in nginx
    assert "LoadCredential" not in nginx and "EnvironmentFile" not in nginx  # it needs neither
    assert "casetransfer-proxy.service" in files["casetransfer.target"]
    assert "ops.systemd exec people -- " in files["casetransfer-api.service"]
    assert "-m ops.people_api --host 127.0.0.1 --port 4200" in files["casetransfer-api.service"]
    assert f'CASETRANSFER_PROXY_SECRET_FILE="{proxy.secret_file}"' in files["casetransfer-server.env"]
    secret = proxy.secret_file.read_text().strip()
    conf = (proxy.folder / "nginx.conf").read_text()
    assert "listen 127.0.0.1:8443 ssl" in conf and secret not in conf  # written and checked by nginx -t
    for name, text in files.items():
        assert secret not in text and SECRET.split(":")[1] not in text, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_with_the_units(tmp_path, monkeypatch):
    _written(tmp_path, proxy=_local_proxy(tmp_path, monkeypatch) if nginx_binary() else None)
    units = sorted((tmp_path / "units").glob("casetransfer*.service"))
    result = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "casetransfer" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_a_unit_process_gets_the_credential_from_systemds_credentials_directory_only(tmp_path):
    import os
    import sys

    (tmp_path / "api-auth").write_text(SECRET + "\n")
    env = {k: v for k, v in os.environ.items() if "AUTH" not in k}
    shown = "import os; print(os.environ.get('PREFECT_API_AUTH_STRING'), os.environ.get('PREFECT_SERVER_API_AUTH_STRING'))"
    shown = shown.replace("))", "), os.environ.get('CASETRANSFER_SERVICE_AUTH_STRING'))")
    for side, server_side in (("client", "None None"), ("server", f"{SECRET} None"), ("people", f"None {SECRET}")):
        result = subprocess.run(
            [sys.executable, "-m", "ops.systemd", "exec", side, "--", sys.executable, "-c", shown],
            env={**env, "CREDENTIALS_DIRECTORY": str(tmp_path)}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert result.stdout.split() == [SECRET, *server_side.split()], side
    outside = subprocess.run([sys.executable, "-m", "ops.systemd", "exec", "client", "--", "true"], env=env, capture_output=True, text=True)
    assert outside.returncode != 0 and "CREDENTIALS_DIRECTORY" in outside.stderr

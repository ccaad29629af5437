"""The proxy in front of the production profile (ops/proxy.py) and the people's API's check of who
is acting (ops/people_api.py, tasks/domain/acting.py), without a server: nginx's configuration as
nginx itself reads it, local accounts as openssl checks them, and the decisions."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from ops.people_api import Refused, StaffFile, WhoIsActing
from ops.proxy import Proxy, add_account, check_conf, nginx_binary, proxy_from_settings, write_conf
from tasks.domain import acting
from tasks.domain.staff import load_staff
from tasks.settings import reset_settings

needs_nginx = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (Debian: apt-get install nginx)")


def a_proxy(tmp_path: Path, mode: str) -> Proxy:
    return Proxy(mode, tmp_path, "127.0.0.1", 18443, tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "htpasswd",
                 tmp_path / "secret", "http://127.0.0.1:4180", "X-Auth-Request-Email")  # fmt: skip


def test_auth_mode_none_starts_no_proxy_and_local_puts_its_files_beside_the_prefect_home(tmp_path, monkeypatch):
    assert proxy_from_settings(tmp_path) is None
    monkeypatch.setenv("CASETRANSFER_AUTH_MODE", "local")
    reset_settings()
    proxy = proxy_from_settings(tmp_path)
    assert proxy is not None and proxy.htpasswd == tmp_path / "proxy" / "htpasswd" and proxy.url == "https://127.0.0.1:8443"


@needs_nginx
@pytest.mark.parametrize("mode", ["local", "sso"])
def test_nginx_accepts_the_configuration_and_the_secret_is_only_in_its_0600_include(tmp_path, mode):
    proxy = a_proxy(tmp_path, mode)
    add_account(proxy.htpasswd, "kim.spo", "kim-password")
    conf = write_conf(proxy, 4200)
    check_conf(conf)
    secret = proxy.secret_file.read_text().strip()
    assert secret not in conf.read_text() and secret in (tmp_path / "secret.conf").read_text()
    assert (tmp_path / "secret.conf").stat().st_mode & 0o077 == 0
    assert ("auth_request /oauth2/auth" in conf.read_text()) == (mode == "sso")


def test_a_local_account_is_an_apr1_hash_openssl_checks_and_a_second_one_replaces_it(tmp_path):
    path = tmp_path / "htpasswd"
    add_account(path, "kim.spo", "first-password")
    add_account(path, "kim.spo", "second-password")
    add_account(path, "lee.spo", "lee-password")
    lines = path.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["kim.spo", "lee.spo"]
    salt = lines[0].split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-apr1", "-salt", salt, "second-password"], capture_output=True, text=True)
    assert lines[0] == f"kim.spo:{again.stdout.strip()}"
    with pytest.raises(ValueError, match="password: at least 8"):
        add_account(path, "pat.receiver", "short")


def middleware(allow_examples: bool = True) -> WhoIsActing:
    return WhoIsActing(lambda *_: None, "the-proxys-secret-0123456789", "casetransfer:service-pw", StaffFile(), allow_examples)  # type: ignore[arg-type,return-value]


def test_only_the_proxys_secret_or_the_service_credential_identify_a_caller():
    check = middleware()
    person = check.identify({b"x-casetransfer-proxy-secret": b"the-proxys-secret-0123456789", b"x-casetransfer-user": b"Kim.SPO"})
    assert person is not None and person.name == "Kim SPO"
    service = {b"authorization": b"Basic " + base64.b64encode(b"casetransfer:service-pw")}
    assert check.identify(service) is None
    for headers in ({b"x-casetransfer-user": b"kim.spo"}, {b"x-casetransfer-proxy-secret": b"guess", b"x-casetransfer-user": b"kim.spo"},
                    {b"authorization": b"Basic " + base64.b64encode(b"casetransfer:guess")}, {}):  # fmt: skip
        with pytest.raises(Refused) as refused:
            check.identify(headers)
        assert refused.value.status == 401


def test_a_signed_in_person_not_on_the_staff_list_or_an_example_in_production_gets_403():
    secret = {b"x-casetransfer-proxy-secret": b"the-proxys-secret-0123456789"}
    with pytest.raises(Refused, match="not on the staff list") as stranger:
        middleware().identify({**secret, b"x-casetransfer-user": b"someone.else"})
    assert stranger.value.status == 403
    with pytest.raises(Refused, match="example person"):
        middleware(allow_examples=False).identify({**secret, b"x-casetransfer-user": b"kim.spo"})


def test_the_record_names_the_person_says_ops_and_keeps_on_behalf_of_only_where_config_allows():
    staff = load_staff()
    ops, admin, kim = (staff.by_signin(s) for s in ("ops.one", "admin.a", "kim.spo"))
    assert ops and admin and kim
    as_ops = acting.may_resume(ops, None)
    assert as_ops.allowed and acting.actor_words(ops, "Kim SPO", as_ops) == "Ops One (ops) on behalf of Kim SPO"
    assert acting.actor_words(ops, "", as_ops) == "Ops One (ops)"
    plain = acting.Decision(True, "")
    assert acting.actor_words(admin, "Pat Receiver", plain) == "Admin A on behalf of Pat Receiver"
    assert acting.actor_words(kim, "Somebody Else", plain) == "Kim SPO"


def test_a_run_without_a_transfers_task_and_a_deployment_not_in_config_are_ops_only():
    staff = load_staff()
    kim = staff.by_signin("kim.spo")
    assert kim is not None
    refused = acting.may_resume(kim, None)
    assert not refused.allowed and "only ops" in refused.reason
    assert not acting.may_run(kim, "recover-transfers", {}).allowed
    assert acting.may_run(kim, "raise-transfer", {"form": {}}).allowed  # any SPO or practitioner raises


def test_every_deployment_rule_names_a_deployment_in_prefect_yaml_and_its_by_parameter():
    import yaml

    from tasks.settings import ROOT

    names = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    rules = acting.deployment_rules()
    assert rules and set(rules) <= names
    parameters = {"form": {"raised_by": "x"}, "raised_by": "x"}
    acting.set_dotted(parameters, rules["raise-transfer"].by, "Kim SPO")
    assert parameters["form"] == {"raised_by": "Kim SPO"}


def test_proxy_account_writes_a_staff_members_account_and_refuses_a_stranger(tmp_path):
    import typer
    from typer.testing import CliRunner

    from ops.cli_proxy import register

    app = typer.Typer()
    register(app)
    app.command("other")(lambda: None)  # typer runs a lone command without its name
    path = tmp_path / "htpasswd"
    written = CliRunner().invoke(app, ["proxy-account", "kim.spo", "--htpasswd", str(path)], input="a-long-password\n")
    assert written.exit_code == 0 and path.read_text().startswith("kim.spo:$apr1$")
    refused = CliRunner().invoke(app, ["proxy-account", "someone.else", "--htpasswd", str(path)], input="a-long-password\n")
    assert refused.exit_code == 2 and "not on the staff list" in refused.output
    assert "someone.else" not in path.read_text()

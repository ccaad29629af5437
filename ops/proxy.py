"""nginx in front of the production profile's UI and people's API (issue 28; docs/production.md).

Each person signs in as themselves: `local` checks an htpasswd file of individual accounts (small
sites, the tests), `sso` asks the organisation's OIDC proxy (oauth2-proxy in front of Entra ID)
by nginx's `auth_request`. Either way nginx serves TLS (a self-signed pair made by openssl when
none is given), passes the signed-in person in a header, and adds a secret the API checks
(ops/people_api.py), so a request that bypasses nginx is refused. nginx runs as a child of the
stack, non-root friendly: its configuration, pid, logs and temporary files are in the proxy's
folder.

    python -m ops.proxy add-account kim.spo            # the password on stdin (or asked for)
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.settings import get_settings

USER_HEADER = "X-Casetransfer-User"
SECRET_HEADER = "X-Casetransfer-Proxy-Secret"


@dataclass(frozen=True)
class Proxy:
    """Where nginx listens, how it signs people in, and its files."""

    mode: str  # local | sso
    folder: Path
    host: str
    port: int
    cert: Path
    key: Path
    htpasswd: Path
    secret_file: Path
    sso_auth_url: str
    sso_user_header: str

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


def proxy_from_settings(home: Path, port: int | None = None) -> Proxy | None:
    """The proxy the settings ask for (None with auth_mode none); `home` is the profile's Prefect home."""
    settings = get_settings()
    if settings.auth_mode == "none":
        return None
    folder = home / "proxy"
    return Proxy(
        mode=settings.auth_mode,
        folder=folder,
        host=settings.proxy_host,
        port=port or settings.proxy_port,
        cert=settings.tls_cert_file or folder / "tls.crt",
        key=settings.tls_key_file or folder / "tls.key",
        htpasswd=settings.htpasswd_file or folder / "htpasswd",
        secret_file=settings.proxy_secret_file or folder / "secret",
        sso_auth_url=settings.sso_auth_url.rstrip("/"),
        sso_user_header=settings.sso_user_header,
    )


def nginx_binary() -> str | None:
    """Debian installs nginx in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)


def _private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ensure_secret(path: Path) -> str:
    """The secret nginx sends and the API checks: read from `path`, made there (0600) the first time."""
    if not path.exists():
        _private_file(path, secrets.token_urlsafe(32) + "\n")
    value = path.read_text().strip()
    if len(value) < 16:
        raise RuntimeError(f"proxy_secret_file: {path} holds fewer than 16 characters")
    return value


def ensure_certificate(proxy: Proxy) -> bool:
    """Make a self-signed certificate for the proxy's host unless the pair exists; True when made."""
    if proxy.cert.exists() and proxy.key.exists():
        return False
    settings = get_settings()
    if settings.tls_cert_file or settings.tls_key_file:
        raise RuntimeError(f"tls_cert_file/tls_key_file: {proxy.cert} or {proxy.key} does not exist")
    proxy.folder.mkdir(parents=True, exist_ok=True)
    names = "DNS:localhost,IP:127.0.0.1" + ("" if proxy.host in ("127.0.0.1", "localhost", "0.0.0.0") else f",DNS:{proxy.host}")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825", "-subj", f"/CN={proxy.host}",
         "-addext", f"subjectAltName={names}", "-keyout", str(proxy.key), "-out", str(proxy.cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    proxy.key.chmod(0o600)
    return True


def add_account(htpasswd: Path, signin: str, password: str) -> None:
    """Add (or replace) one person's local account: an apr1 hash made by openssl, the password on
    its stdin, never on a command line."""
    if not signin or ":" in signin or any(c.isspace() for c in signin):
        raise ValueError(f"signin: {signin!r}: one word without ':'")
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    hashed = subprocess.run(
        ["openssl", "passwd", "-apr1", "-stdin"], input=password + "\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = htpasswd.read_text().splitlines() if htpasswd.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != signin]
    _private_file(htpasswd, "\n".join([*kept, f"{signin}:{hashed}"]) + "\n")


def _location_to_api(upstream: str, user: str, extra: str = "") -> str:
    return f"""
            {extra}
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header Authorization "";
            proxy_set_header {USER_HEADER} {user};
            include secret.conf;
            proxy_read_timeout 3600s;"""


def render_conf(proxy: Proxy, api_port: int) -> str:
    """nginx's configuration: everything it writes in the proxy's folder, TLS, and per mode how a
    person is signed in. The secret is in secret.conf (0600), included, never in this file."""
    folder = proxy.folder
    upstream = f"http://127.0.0.1:{api_port}"
    if proxy.mode == "local":
        auth = f'auth_basic "casetransfer"; auth_basic_user_file {proxy.htpasswd};'
        person = _location_to_api(upstream, "$remote_user")
        sso = ""
    else:
        variable = "$upstream_http_" + proxy.sso_user_header.lower().replace("-", "_")
        auth = ""
        person = _location_to_api(
            upstream, "$ct_user", f"auth_request /oauth2/auth; auth_request_set $ct_user {variable}; error_page 401 = @signin;"
        )
        sso = f"""
        location = /oauth2/auth {{
            internal;
            proxy_pass {proxy.sso_auth_url};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Original-URI $request_uri;
        }}
        location /oauth2/ {{
            proxy_pass {proxy.sso_auth_url};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
        }}
        location @signin {{
            return 302 /oauth2/sign_in?rd=$request_uri;
        }}"""
    user = "user root root;" if os.geteuid() == 0 else ""  # as root, nginx's workers would run as nobody
    return f"""# Written by casetransfer (ops/proxy.py) at each start: edit the settings, not this file.
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
    client_max_body_size 20m;
    server_tokens off;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen {proxy.host}:{proxy.port} ssl;
        ssl_certificate {proxy.cert};
        ssl_certificate_key {proxy.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        add_header Strict-Transport-Security "max-age=31536000" always;
        location = /api/health {{ proxy_pass {upstream}; }}
        {sso}
        location / {{
            {auth}{person}
        }}
    }}
}}
"""


def write_conf(proxy: Proxy, api_port: int) -> Path:
    """The configuration, the secret's include and the folders nginx writes in."""
    for sub in ("logs", "tmp"):
        (proxy.folder / sub).mkdir(parents=True, exist_ok=True)
    secret = ensure_secret(proxy.secret_file)
    _private_file(proxy.folder / "secret.conf", f'proxy_set_header {SECRET_HEADER} "{secret}";\n')
    ensure_certificate(proxy)
    if proxy.mode == "local" and not proxy.htpasswd.exists():
        raise RuntimeError(
            f"auth_mode local: no accounts yet in {proxy.htpasswd}: add one with `python -m ops.proxy add-account SIGNIN`"
        )
    conf = proxy.folder / "nginx.conf"
    conf.write_text(render_conf(proxy, api_port))
    return conf


def nginx_command(conf: Path) -> list[str]:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("auth_mode local or sso needs nginx (Debian: apt-get install nginx)")
    # -e: before reading the configuration nginx opens its default error log, which a non-root user may not.
    return [binary, "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "logs" / "error.log"), "-g", "daemon off;"]


def check_conf(conf: Path) -> None:
    result = subprocess.run([*nginx_command(conf)[:-2], "-t"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t {conf}: {result.stderr.strip()}")


def wait_until_listening(proxy: Proxy, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}; see {proxy.folder}/logs/error.log")
        try:
            with socket.create_connection((proxy.host if proxy.host != "0.0.0.0" else "127.0.0.1", proxy.port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nginx did not listen on {proxy.host}:{proxy.port} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    from tasks.domain.staff import load_staff

    parser = argparse.ArgumentParser(prog="python -m ops.proxy", description="Local accounts of the production profile's proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-account", help="add or replace a person's account (password on stdin or asked for)")
    add.add_argument("signin", help="their signin in config/staff/people.yaml")
    add.add_argument("--htpasswd", type=Path, help="default: the production profile's (settings htpasswd_file)")
    args = parser.parse_args(argv)
    settings = get_settings()
    path = args.htpasswd or settings.htpasswd_file or settings.data_dir / "prefect-production" / "proxy" / "htpasswd"
    if load_staff().by_signin(args.signin) is None:
        print(f"signin: {args.signin!r} is not on the staff list (config/staff/people.yaml)", file=sys.stderr)
        return 2
    password = getpass.getpass(f"password for {args.signin}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        add_account(path, args.signin, password)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"{args.signin}: account written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

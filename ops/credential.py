"""The basic-auth credential of the production profile's API servers: where it comes from, and
how the CLI picks it up. Apart from ops/production.py so that every command can authenticate
without importing the stack machinery (httpx, subprocess management)."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.settings import get_settings

AUTH_USER = "casetransfer"
AUTH_ENV = "CASETRANSFER_API_AUTH_STRING"  # "user:password", given by the operator
AUTH_FILE_ENV = "CASETRANSFER_API_AUTH_FILE"  # a file holding it (a secret mounted by the platform)


def api_credential(default_file: Path) -> tuple[str, str]:
    """The basic-auth credential ("user:password") for every API server, and where it came from:
    the environment (CASETRANSFER_API_AUTH_STRING), a file named by CASETRANSFER_API_AUTH_FILE,
    or `default_file`, generated on first use (readable by this user only). The value itself
    is never printed, logged or written anywhere else (not prefect.yaml, not the README)."""
    import secrets

    if value := os.environ.get(AUTH_ENV, "").strip():
        source = f"${AUTH_ENV}"
    else:
        path = Path(os.environ.get(AUTH_FILE_ENV) or default_file)
        if not path.exists():
            if os.environ.get(AUTH_FILE_ENV):
                raise RuntimeError(f"{AUTH_FILE_ENV}: {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{AUTH_USER}:{secrets.token_urlsafe(32)}\n")
        value, source = path.read_text().strip(), str(path)
    if ":" not in value or not value.split(":", 1)[1]:
        raise RuntimeError(f"the API credential from {source}: must be user:password")
    return value, source


def auth_file(home: Path | None = None) -> Path:
    """Where up-production keeps the credential it generated (next to the profile's Prefect home)."""
    return (home or get_settings().data_dir / "prefect-production") / "api-auth"


def authenticate_cli() -> None:
    """The CLI on the machine that runs the production profile: give Prefect's client the
    credential up-production uses, unless PREFECT_API_AUTH_STRING already says one. Read into
    this process's environment only."""
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return
    if os.environ.get(AUTH_ENV) or os.environ.get(AUTH_FILE_ENV) or auth_file().exists():
        try:
            os.environ["PREFECT_API_AUTH_STRING"] = api_credential(auth_file())[0]
        except (OSError, RuntimeError):
            return  # the server will answer 401, and the CLI says so

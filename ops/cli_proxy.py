"""`casetransfer proxy-account SIGNIN`: a person's local account for the production profile's
proxy (auth_mode local; ops/proxy.py, docs/production.md). Registered by ops/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def proxy_account(
    signin: Annotated[str, typer.Argument(help="Their signin in config/staff/people.yaml")],
    htpasswd: Annotated[Path | None, typer.Option(help="Default: the profile's (setting htpasswd_file)")] = None,
) -> None:
    """Add or replace a person's account in the proxy's htpasswd file (the password asked for, or read from stdin)."""
    from ops.proxy import main

    raise typer.Exit(main(["add-account", signin, *(["--htpasswd", str(htpasswd)] if htpasswd else [])]))


def register(app: typer.Typer) -> None:
    app.command("proxy-account")(proxy_account)

"""What every command shares and must stay cheap to import: the two consoles, made on first use
(rich costs tens of milliseconds to import, and most commands print plain lines), and the check
that a Prefect server answers (the standard library's HTTP client, not httpx, for the same reason)."""

from __future__ import annotations

import http.client
import sys
from typing import Any, NoReturn
from urllib.parse import urlsplit

import typer


class LazyConsole:
    """A rich Console, made when something is first printed through it."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Any = None

    @property
    def real(self) -> Any:
        """The Console itself, for rich objects that take one (Progress(console=...))."""
        if self._console is None:
            from rich.console import Console

            # Piped output (files, tests, mail) gets full-width tables rather than 80 columns.
            self._console = Console(stderr=True) if self._stderr else Console(width=None if sys.stdout.isatty() else 200)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


out = LazyConsole()
err = LazyConsole(stderr=True)


def visible(text: object) -> Any:
    """Stored text as rich shows it exactly: never read as markup (a name like "Jo Smith [nee
    Jones]" or a reason holding "[/]"), and with control characters shown as escapes rather than
    sent to the terminal (rich would drop them silently)."""
    from rich.text import Text

    raw = str(text)
    shown = "".join(ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode() for ch in raw)
    return Text(shown)


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command: the message on stderr, exit `code` (2 bad input, 3 not found, 1 the rest)."""
    print(message, file=sys.stderr)
    raise typer.Exit(code)


def answers(api_url: str, timeout: float = 1.0) -> bool:
    """True when a Prefect API at `api_url` (…/api) answers its health check with 200."""
    url = urlsplit(api_url)
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        conn.request("GET", f"{url.path.rstrip('/')}/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()

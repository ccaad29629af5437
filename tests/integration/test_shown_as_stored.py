"""Stored text is shown exactly as stored: `casetransfer status` never reads a name, a reason or a
concern as rich markup, and shows control characters as escapes instead of sending them to the
terminal."""

from __future__ import annotations

from conftest import demo_form
from support.cli import cli

from tasks.domain import transfers
from tasks.domain.form import parse_form

HOSTILE = ["[/]", "[bold]loud[/bold]", "Jo Smith [nee Jones]", "\x1b[31mred\x1b[0m"]


def test_status_shows_markup_and_escape_codes_exactly_as_stored(store_url):
    ref = transfers.register_nsi(parse_form(demo_form(name="Jo Smith [nee Jones]")), "shown-as-stored")
    for n, text in enumerate(HOSTILE):
        transfers.escalate(ref, f"concern {n}: {text}", f"Officer {n} {text}")
    result = cli("status", ref)
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "Jo Smith [nee Jones]" in shown
    for n, text in enumerate(HOSTILE[:3]):
        assert f"concern {n}: {text}" in shown
    # The escape character itself never reaches the terminal; it is shown as \x1b.
    assert "\x1b" not in shown
    assert "concern 3: \\x1b[31mred\\x1b[0m" in shown


def test_a_plain_status_still_reads_as_before(store_url):
    ref = transfers.register_nsi(parse_form(demo_form()), "plain")
    shown = cli("status", ref).stdout
    assert shown.splitlines()[0].startswith(f"{ref} case transfer: ")
    assert "Actions" in shown and "History" in shown

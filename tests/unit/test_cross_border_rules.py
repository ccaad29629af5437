"""The rules of moving again and of cross-border moves as plain functions (issue 25, items 3 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import demo_form

from tasks.domain.form import FormError, parse_form
from tasks.domain.moving_again import RepeatMoverRule, load_rule
from tasks.places.cross_border import REASON_FIELD, named_pdu_detail, named_pdu_problem, route_for
from tasks.settings import get_settings


def test_each_place_outside_england_and_wales_has_its_own_route_in_config() -> None:
    cfg = yaml.safe_load((get_settings().config_dir / "cross_border.yaml").read_text())
    for place in ("Scotland", "Northern Ireland", "the Channel Islands", "the Isle of Man"):
        route = route_for(place)
        assert route.process == cfg["process"] == "the inter-jurisdiction transfer process"
        assert route.service == cfg["jurisdictions"][place]["service"]
        assert route.words().startswith(f"a move there is made through {route.process} with {route.service}")
        assert "PDU instead" not in route.words()


def test_a_place_config_does_not_list_still_gets_the_general_process(tmp_path: Path) -> None:
    (tmp_path / "cross_border.yaml").write_text("process: the cross-border process\njurisdictions: {}\n")
    route = route_for("Atlantis", tmp_path)
    assert (route.place, route.process) == ("Atlantis", "the cross-border process")


def test_a_named_pdu_needs_a_reason_only_when_the_locator_places_the_postcode_elsewhere() -> None:
    assert named_pdu_problem("N55LEE", "N55LEE", None) is None
    assert named_pdu_problem("N55LEE", None, None) is None  # the locator cannot place it: the form decides
    assert named_pdu_problem("N55LEE", "N50GMS", "Approved premises in Leeds") is None
    field, words = named_pdu_problem("N55LEE", "N50GMS", "  ", "Manchester South") or ("", "")
    assert field == REASON_FIELD and "Manchester South (N50GMS), not N55LEE" in words


def test_the_history_keeps_the_reason_for_a_named_pdu_only_when_it_differs() -> None:
    assert named_pdu_detail("N55LEE", None, "a reason") == ""
    assert named_pdu_detail("N55LEE", "N50GMS", " AP bed ") == (
        "; receiving PDU N55LEE named on the form, where the locator places the postcode in N50GMS: AP bed"
    )


def test_the_repeat_mover_rule_comes_from_config_and_refuses_a_single_transfer(tmp_path: Path) -> None:
    assert load_rule() == RepeatMoverRule(2, 12, ("withdrawn",))
    (tmp_path / "moving_again.yaml").write_text("repeat_mover: {transfers: 1, months: 12}\n")
    with pytest.raises(ValueError, match="transfers must be 2 or more"):
        load_rule(tmp_path)


def test_supersedes_on_the_form_must_be_an_nsi_reference() -> None:
    assert parse_form(demo_form(supersedes=" ct000123 ")).supersedes == "CT000123"
    assert parse_form(demo_form(supersedes="")).supersedes is None
    with pytest.raises(FormError) as exc:
        parse_form(demo_form(supersedes="X123456"))
    assert [field for field, _ in exc.value.problems] == ["supersedes"]

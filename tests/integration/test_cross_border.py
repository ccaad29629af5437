"""Cross-border (issue 25, item 6) and raising from the command line (item 3), on SQLite and
PostgreSQL: an address outside England and Wales is refused with the inter-jurisdiction route from
config/cross_border.yaml, a named receiving PDU is checked against the postcode, and `casetransfer
raise` refuses a second open NSI for a person, naming the field, with nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import demo_form
from sqlalchemy import func, select
from support.cli import cli

from tasks.domain import transfer_views, transfers
from tasks.domain.form import FormError, parse_form
from tasks.store.models import Nsi
from tasks.store.unit_of_work import UnitOfWork

# First postcodes of their outward codes in the ONS directory (tasks/places/locator.py places them).
OUTSIDE = {"EH1 1AA": "Scotland", "BT1 1AA": "Northern Ireland", "JE2 3AA": "the Channel Islands", "IM1 1AA": "the Isle of Man"}
MANCHESTER_SOUTH, LEEDS = "M14 0AA", "N55LEE"


def raise_demo(key: str, **changes) -> str:
    return transfers.register_nsi(parse_form(demo_form(**changes)), key)


def stored() -> int:
    with UnitOfWork() as uow:
        return uow.session.scalar(select(func.count()).select_from(Nsi)) or 0


@pytest.mark.parametrize("postcode", sorted(OUTSIDE))
def test_an_address_outside_england_and_wales_is_refused_with_the_inter_jurisdiction_route(store_url, postcode):
    with pytest.raises(FormError) as exc:
        raise_demo("outside", proposed_postcode=postcode)
    [(field, words)] = exc.value.problems
    assert field == "proposed_postcode"
    assert OUTSIDE[postcode] in words and "the inter-jurisdiction transfer process" in words
    assert "name the receiving_pdu_code" not in words and "PDU instead" not in words
    assert stored() == 0


def test_a_named_pdu_for_a_scottish_address_is_refused_naming_the_field(store_url):
    with pytest.raises(FormError) as exc:
        raise_demo("named", proposed_postcode="EH1 1AA", receiving_pdu_code="N50GMS")
    [(field, words)] = exc.value.problems
    assert field == "receiving_pdu_code" and "Scotland" in words and "inter-jurisdiction" in words
    assert stored() == 0


def test_a_named_pdu_the_locator_would_not_choose_needs_a_reason_which_the_history_keeps(store_url):
    with pytest.raises(FormError) as exc:
        raise_demo("no-reason", proposed_postcode=MANCHESTER_SOUTH, receiving_pdu_code=LEEDS)
    [(field, words)] = exc.value.problems
    assert field == "receiving_pdu_reason" and "Manchester South (N50GMS)" in words and LEEDS in words
    assert stored() == 0
    reason = "Approved premises bed in Leeds agreed by MAPPA"
    ref = raise_demo("reason", proposed_postcode=MANCHESTER_SOUTH, receiving_pdu_code=LEEDS, receiving_pdu_reason=reason)
    view = transfer_views.status_of(ref)
    assert view.receiving.startswith("Leeds")
    assert view.history[0].detail.endswith(f"receiving PDU {LEEDS} named on the form, where the locator places the postcode in N50GMS: {reason}")


def test_a_named_pdu_that_agrees_with_the_locator_needs_no_reason(store_url):
    ref = raise_demo("agrees", proposed_postcode=MANCHESTER_SOUTH, receiving_pdu_code="N50GMS")
    assert transfer_views.status_of(ref).history[0].detail == "case_transfer raised to Manchester South"


def test_locate_says_the_route_for_a_scottish_postcode_and_exits_3(store_url):
    result = cli("locate", "EH1", "1AA", check=False)
    assert result.returncode == 3
    assert "Scotland" in result.stderr and "the inter-jurisdiction transfer process" in result.stderr
    assert "receiving_pdu_code" not in result.stderr


def _form_file(tmp_path: Path, **changes) -> str:
    path = tmp_path / "form.yaml"
    path.write_text(yaml.safe_dump(demo_form(**changes)))
    return str(path)


def test_raise_refuses_a_second_open_nsi_for_the_person_exits_2_and_stores_nothing(store_url, tmp_path):
    first = raise_demo("first")
    result = cli("raise", _form_file(tmp_path, proposed_postcode="LS1 1AA"), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert f"crn: this person already has an open NSI, {first}" in result.stderr
    assert f"casetransfer amend {first}" in result.stderr and "nothing was stored" in result.stderr
    assert stored() == 1


def test_raise_supersedes_a_closed_nsi_is_refused_naming_the_field(store_url, tmp_path):
    first = raise_demo("first")
    transfers.withdraw(first, "Not moving", "Jo SPO")
    result = cli("raise", _form_file(tmp_path), "--supersedes", first.lower(), check=False)
    assert result.returncode == 2
    assert f"supersedes: {first} is already withdrawn" in result.stderr
    both = cli("raise", _form_file(tmp_path, supersedes="CT000007"), "--supersedes", first, check=False)
    assert both.returncode == 2 and both.stderr.startswith("supersedes:")
    assert stored() == 1

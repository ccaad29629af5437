"""004 12.4 for real, on the concurrent shape: a youth transfer in whose information is stayed,
then (the missing item sent) rejected, each told to the requesting service's mailbox once, and
re-requested by a new NSI linked to it; a real Prefect server, its served deployments and the
command line as staff use it."""

from __future__ import annotations

import email
import os
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from conftest import demo_form
from support.cli import cli
from support.smtp import parts
from support.waits import prefect_api, wait_for
from support.youth import YOUTH_FIELDS

from tasks.domain import transfer_views
from tasks.domain.form import parse_form

pytestmark = pytest.mark.prefect

YOUTH = {"env": {"CASETRANSFER_PROFILE": "youth"}}
ALLOCATION = ["--case-manager", "CM201", "--team-code", "N50CAD", "--contact-frequency-weeks", "1", "--recorded-by", "Kim TM",
              "--done-on", "2026-12-15"]  # fmt: skip


def raise_youth(stack, **changes) -> str:
    from services import raise_transfer

    form = parse_form(demo_form(**{**YOUTH_FIELDS, "raised_on": "2026-12-14", **changes}), "youth")
    with prefect_api(stack):
        return raise_transfer(form, job_variables=YOUTH)[0]


def waiting(reference: str) -> set[str]:
    """The tasks whose runs wait now."""
    return {t.task for t in transfer_views.status_of(reference).tasks if t.flow_run_id}


def notices(reference: str, subject: str) -> list[EmailMessage]:
    """The notices in the outbox about `reference` whose subject says `subject`."""
    found = []
    for path in Path(os.environ["CASETRANSFER_OUTBOX"]).glob("notice_*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        if reference in str(msg["Subject"]) and subject in str(msg["Subject"]):
            found.append(msg)
    return found  # type: ignore[return-value]


def test_12_4_a_youth_request_is_stayed_then_rejected_the_requester_told_once_each_and_re_requested(prefect_stack):
    ref = raise_youth(prefect_stack, crn="Y300010")
    assert transfer_views.shape_of(ref) == 2
    cli("record", ref, "allocation", *ALLOCATION)
    cli("record", ref, "documents", "--done-on", "2026-12-16", "--recorded-by", "Admin A")
    wait_for(lambda: "information_review" in waiting(ref), 120, "the review of the information received")

    out = cli("record", ref, "information_review", "--outcome", "stay", "--missing", "asset_plus", "--missing",
              "record_of_contacts", "--reasons", "AssetPlus last updated in June", "--recorded-by", "Kim TM").stdout  # fmt: skip
    assert "recorded as stayed" in out and "missing asset plus, record of contacts" in out
    wait_for(lambda: "documents" in waiting(ref) and "information_review" not in waiting(ref), 120, "the documents to reopen")
    wait_for(lambda: len(notices(ref, "Transfer request stayed")) == 1, 60, "the stay's notice")
    text, _ = parts(notices(ref, "Transfer request stayed")[0])
    assert "What they said: missing asset plus, record of contacts: AssetPlus last updated in June" in text
    early = cli("record", ref, "information_review", "--outcome", "sufficient", "--recorded-by", "Kim TM", check=False)
    assert early.returncode == 2 and "opens after documents" in early.stderr

    cli("record", ref, "documents", "--recorded-by", "Admin A")  # what was missing arrives
    wait_for(lambda: "information_review" in waiting(ref), 120, "the review again")
    cli("record", ref, "information_review", "--outcome", "reject", "--reasons", "The AssetPlus sent is not of sufficient quality",
        "--recorded-by", "Kim TM")  # fmt: skip
    wait_for(lambda: transfer_views.status_of(ref).status == "refused", 60, "the rejection")
    wait_for(lambda: len(notices(ref, "Transfer request rejected")) == 1, 60, "the rejection's notice")
    text, _ = parts(notices(ref, "Transfer request rejected")[0])
    assert "The AssetPlus sent is not of sufficient quality" in text and f"re_request_of: {ref}" in text
    assert len(notices(ref, "Transfer request stayed")) == 1  # told once, however often the run woke since
    assert not waiting(ref)

    again = raise_youth(prefect_stack, crn="Y300010", re_request_of=ref)
    assert f"re-requests {ref}" in cli("status", again).stdout
    assert f"re-requested as {again}" in cli("status", ref).stdout

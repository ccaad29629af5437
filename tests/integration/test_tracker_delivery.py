"""The nightly tracker delivered (issue 16): each region's workbook to its own MIS mailbox through a
real SMTP server on loopback, exactly once, on working days; too large a workbook as a link; a
region on a shared folder gets a copy; example mailboxes are held. Real workbooks, opened with openpyxl."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
import yaml
from conftest import demo_form
from sqlalchemy import select
from support.smtp import SmtpServer, free_port, smtp_on_loopback

from tasks.demo.seed import seed
from tasks.domain import transfers
from tasks.domain.form import parse_form
from tasks.notify.mail_job import NotDelivered
from tasks.notify.sent_log import undelivered
from tasks.places.estate import load_estate
from tasks.reports.tracker import TrackerRun, headline, load_data, run_tracker
from tasks.reports.tracker_delivery import (
    NATIONAL,
    artifact_markdown,
    deliver_trackers,
    load_targets,
    workbooks_of,
)
from tasks.settings import reset_settings
from tasks.store.models import Nsi, SentEmail
from tasks.store.unit_of_work import UnitOfWork

AS_OF = dt.date(2026, 12, 21)  # a Monday
BOXING_DAY_SUBSTITUTE = dt.date(2026, 12, 28)  # a bank holiday
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def mis(code: str) -> str:
    return f"mis.{code.lower()}@probation.test"


NATIONAL_LIST = ["mis.national@probation.test", "performance@probation.test"]


@pytest.fixture
def real_mis_mailboxes(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """<data_dir>/tracker_mailboxes.d/: real mailboxes for every region, as a deployment adds them."""
    data = tmp_path / "data"
    folder = data / "tracker_mailboxes.d"
    folder.mkdir(parents=True)
    doc = {
        "regions": {code: {"mailbox": mis(code)} for code in load_estate().regions},
        "national": [{"mailbox": m} for m in NATIONAL_LIST],
    }
    (folder / "real.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("CASETRANSFER_DATA_DIR", str(data))
    reset_settings()
    return folder


@pytest.fixture
def smtp(real_mis_mailboxes: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_on_loopback(monkeypatch) as server:
        yield server


def night(tmp_path: Path, url: str, day: dt.date = AS_OF) -> TrackerRun:
    seed(200, 5, AS_OF, url=url)
    transfers.register_nsi(
        parse_form(demo_form(raised_on="2026-12-01", lao=True, name="Quentin Secretname", crn="L000001")),
        "lao",
        placement=transfers.Placement("N50GMS", 280.0),
    )
    return run_tracker(day, tmp_path / "trackers", url=url, workers=1)


def attachment(msg: EmailMessage) -> tuple[str, bytes]:
    files = [p for p in msg.iter_attachments()]
    assert len(files) == 1, [p.get_filename() for p in files]
    assert files[0].get_content_type() == XLSX
    return str(files[0].get_filename()), files[0].get_content()


def references(xlsx: bytes) -> set[str]:
    ws = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)["Transfers"]
    rows = ws.iter_rows(values_only=True)
    header = list(next(rows))
    col = header.index("Reference")
    return {r[col] for r in rows if r[col]}


def test_each_region_gets_its_own_workbook_and_a_second_run_the_same_night_sends_nothing(
    smtp: SmtpServer, store_url: str, tmp_path: Path
) -> None:
    run = night(tmp_path, store_url)
    summary = deliver_trackers(AS_OF, workbooks_of(run.regions, run.national))
    regions = sorted(load_estate().regions)
    assert (summary.sent, summary.failed, summary.held) == (len(regions) + len(NATIONAL_LIST), 0, [])
    for r in run.regions:
        msg = smtp.inbox.to(mis(r.region_code))
        assert len(msg) == 1, r.region_code
        name, content = attachment(msg[0])
        # Its own workbook, byte for byte, under a name that says what it is and not where it sat.
        assert name == f"case-transfer-tracker-{r.region_code.lower()}-2026-12-21.xlsx"
        assert content == Path(r.path).read_bytes()
        assert str(tmp_path) not in msg[0].as_string()
        assert f"Case transfer tracker for {r.region_name}, 21 December 2026" in msg[0]["Subject"]
        # ... and no other region's: every transfer in it goes from or to this region.
        with UnitOfWork(store_url) as uow:
            regions_of = {
                ref: {t, rcv}
                for ref, t, rcv in uow.session.execute(
                    select(Nsi.reference, Nsi.transferring_region_code, Nsi.receiving_region_code)
                )
            }
        listed = references(content)
        assert listed and all(r.region_code in regions_of[ref] for ref in listed)
    for mailbox in NATIONAL_LIST:
        (msg,) = smtp.inbox.to(mailbox)
        assert attachment(msg)[0] == "case-transfer-tracker-national-2026-12-21.xlsx"
    # One recipient per message: no region's workbook is copied to another mailbox.
    assert all(len(rcpt) == 1 for rcpt, _ in smtp.inbox.messages)

    # The tracker is written again the same night (a retry, a rerun by hand): new bytes, same emails.
    again_run = run_tracker(AS_OF, tmp_path / "trackers", url=store_url, workers=1)
    again = deliver_trackers(AS_OF, workbooks_of(again_run.regions, again_run.national))
    assert (again.sent, again.skipped) == (0, len(regions) + len(NATIONAL_LIST))
    assert len(smtp.inbox.messages) == len(regions) + len(NATIONAL_LIST)


def test_nothing_is_delivered_on_a_bank_holiday(smtp: SmtpServer, store_url: str, tmp_path: Path) -> None:
    run = night(tmp_path, store_url, BOXING_DAY_SUBSTITUTE)
    summary = deliver_trackers(BOXING_DAY_SUBSTITUTE, workbooks_of(run.regions, run.national))
    assert summary.working_day is False and smtp.inbox.messages == []


def test_a_workbook_over_the_limit_is_linked_not_attached(
    smtp: SmtpServer, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_mis_mailboxes: Path
) -> None:
    run = night(tmp_path, store_url)
    n07 = next(r for r in run.regions if r.region_code == "N07")
    (real_mis_mailboxes / "zz-limit.yaml").write_text(yaml.safe_dump({"max_attachment_bytes": Path(n07.path).stat().st_size - 1}))
    monkeypatch.setenv("CASETRANSFER_TRACKER_BASE_URL", "https://mis.probation.test/trackers/")
    reset_settings()
    deliver_trackers(AS_OF, workbooks_of([n07], run.national))
    (msg,) = smtp.inbox.to(mis("N07"))
    assert list(msg.iter_attachments()) == []
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "too large to attach" in text
    assert "https://mis.probation.test/trackers/2026-12-21/N07.xlsx" in text
    assert str(tmp_path) not in msg.as_string()


def test_a_region_on_a_shared_folder_gets_a_copy_and_no_email(
    smtp: SmtpServer, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_mis_mailboxes: Path
) -> None:
    run = night(tmp_path, store_url)
    (real_mis_mailboxes / "zz-folder.yaml").write_text(yaml.safe_dump({"regions": {"N58": {"delivery": "folder"}}}))
    shared = tmp_path / "shared"
    monkeypatch.setenv("CASETRANSFER_TRACKER_SHARED_DIR", str(shared))
    reset_settings()
    summary = deliver_trackers(AS_OF, workbooks_of(run.regions, run.national))
    assert summary.facts.copied == 1 and smtp.inbox.to(mis("N58")) == []
    n58 = next(r for r in run.regions if r.region_code == "N58")
    assert (shared / "N58" / "N58-2026-12-21.xlsx").read_bytes() == Path(n58.path).read_bytes()


def test_example_mailboxes_are_held_through_smtp(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer(free_port())
    server.start()
    try:
        monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(server.port))
        reset_settings()
        run = night(tmp_path, store_url)
        summary = deliver_trackers(AS_OF, workbooks_of(run.regions, run.national))
    finally:
        server.stop()
    assert server.inbox.messages == [] and summary.sent == 0
    assert len(summary.held) == len(load_estate().regions) + 1  # the shipped national list has one example
    with UnitOfWork(store_url) as uow:
        assert uow.session.scalars(select(SentEmail)).all() == []


def test_without_smtp_the_workbooks_go_to_the_outbox(store_url: str, tmp_path: Path) -> None:
    run = night(tmp_path, store_url)
    deliver_trackers(AS_OF, workbooks_of(run.regions, run.national))
    assert len(list((tmp_path / "outbox").glob("mis_tracker_*.eml"))) == len(load_estate().regions) + 1


def test_a_typo_in_a_region_code_is_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"max_attachment_bytes": 10, "regions": {"N99": {"mailbox": "a@b.test"}}}))
    with pytest.raises(ValueError, match=r"bad.yaml: regions.N99: not a region"):
        load_targets([bad])
    bad.write_text(yaml.safe_dump({"max_attachment_bytes": 10, "regions": {"N07": {"mailbox": "not an address"}}}))
    with pytest.raises(ValueError, match=r"regions.N07: needs a 'mailbox'"):
        load_targets([bad])
    bad.write_text(yaml.safe_dump({"max_attachment_bytes": 10, "regions": {"N07": {"delivery": "fax"}}}))
    with pytest.raises(ValueError, match=r"regions.N07.delivery: must be 'email' or 'folder'"):
        load_targets([bad])


def test_the_artifact_links_each_workbook_gives_the_headline_and_lists_what_was_not_delivered(
    real_mis_mailboxes: Path, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = night(tmp_path, store_url)
    monkeypatch.setenv("CASETRANSFER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CASETRANSFER_SMTP_PORT", str(free_port()))  # nothing listens: SMTP is down
    monkeypatch.setenv("CASETRANSFER_TRACKER_BASE_URL", "https://mis.probation.test/trackers")
    reset_settings()
    with pytest.raises(NotDelivered) as down:
        deliver_trackers(AS_OF, workbooks_of(run.regions, run.national))
    data = load_data(AS_OF, store_url)
    md = artifact_markdown(
        AS_OF, run.regions, run.national, headline(data, run.regions), 20, undelivered(), down.value.summary.lines()
    )
    assert f"- Open transfers: **{int(data.nsis['is_open'].sum())}**" in md
    assert "- Completed within 20 working days: **" in md and "PDUs flagged slow at police checks" in md
    for r in run.regions:
        assert f"[{r.region_code}.xlsx](https://mis.probation.test/trackers/2026-12-21/{r.region_code}.xlsx)" in md
    assert str(tmp_path) not in md
    # Every workbook email SMTP did not take is listed, not only logged.
    assert f"mis_tracker to {mis('N07')}: OFFICIAL-SENSITIVE: Case transfer tracker for London" in md
    assert md.count("mis_tracker to ") == len(run.regions) + len(NATIONAL_LIST)


def test_the_shipped_config_has_an_example_mailbox_for_every_region() -> None:
    targets = load_targets()
    assert set(targets.regions) == set(load_estate().regions)
    assert all(t.mailbox is not None and t.mailbox.example for t in targets.regions.values())
    assert targets.national and all(m.example for m in targets.national)
    assert NATIONAL == "national"

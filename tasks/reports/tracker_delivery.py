"""Delivering the nightly MIS tracker: each region's workbook to that region, the national one to a list.

The rules (numbers and mailboxes in config/tracker_mailboxes.yaml, never here):

- **Each region gets its own workbook and no other.** A region's entry names one MIS mailbox;
  the region's `<code>.xlsx` is attached to an email to it. `national.xlsx` goes to every mailbox
  on the `national` list.
- **The days are the reminders' days**: working days only (a mail job's send days,
  tasks/notify/mail_job.py), so a bank holiday's workbook is written but not sent; the next
  working day's is.
- **The same delivery, sent-log and exactly-once rules as the digests**: it is a mail job
  (tasks/notify/mail_job.py). The sent-log key is (kind, mailbox, day, which workbook): a second
  tracker run the same night sends nothing, even though the rebuilt file's bytes differ. What
  SMTP refused is resent by the next run.
- **Too large to attach**: over `max_attachment_bytes` the email links to the file instead
  (settings.tracker_base_url); without a base URL it names the file, never a server path.
- **A shared folder instead**: a region with `delivery: folder` gets its workbook copied to
  `<tracker_shared_dir>/<region code>/<region code>-<YYYY-MM-DD>.xlsx`, and no email.
- **Example mailboxes are held** through SMTP, as the digests' are (config/spocs.yaml's rule): the
  outbox still gets them.

Everything but `deliver_trackers` (which copies and sends) is a pure function of its inputs.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tasks.config_files import read_yaml
from tasks.notify.mail_job import Facts, Mail, MailJob, Summary, run_mail_job
from tasks.settings import Settings, get_settings

if TYPE_CHECKING:
    from tasks.notify.email import Attachment, Transport

KIND = "mis_tracker"
TEMPLATE = "tracker_delivery"
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
NATIONAL = "national"


@dataclass(frozen=True)
class Mailbox:
    address: str
    example: bool


@dataclass(frozen=True)
class RegionTarget:
    code: str
    delivery: Literal["email", "folder"]
    mailbox: Mailbox | None  # None for a region that takes its file from the shared folder


@dataclass(frozen=True)
class Targets:
    regions: dict[str, RegionTarget]
    national: tuple[Mailbox, ...]
    max_attachment_bytes: int


def target_files(settings: Settings | None = None) -> list[Path]:
    """config/tracker_mailboxes.yaml, then config/tracker_mailboxes.d/*.yaml, then <data_dir>/tracker_mailboxes.d/*.yaml."""
    settings = settings or get_settings()
    files = [settings.config_dir / "tracker_mailboxes.yaml"]
    for folder in (settings.config_dir / "tracker_mailboxes.d", settings.data_dir / "tracker_mailboxes.d"):
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    return files


def _mailbox(entry: Any, where: str) -> Mailbox:
    from tasks.places.locator import EMAIL_PATTERN

    if not isinstance(entry, dict) or not EMAIL_PATTERN.match(str(entry.get("mailbox", ""))):
        raise ValueError(f"{where}: needs a 'mailbox' that is an email address")
    address = str(entry["mailbox"])
    # A domain with an "example" label is a placeholder even if the file forgets to say so.
    placeholder = "example" in address.rsplit("@", 1)[1].lower().split(".")
    return Mailbox(address, bool(entry.get("example", placeholder)))


def load_targets(files: Sequence[Path] | None = None, region_codes: Sequence[str] | None = None) -> Targets:
    """Every region's delivery and the national list; a later file replaces a region's whole entry."""
    if region_codes is None:
        from tasks.places.estate import load_estate

        region_codes = list(load_estate().regions)
    files = list(files) if files is not None else target_files()
    regions: dict[str, RegionTarget] = {}
    national: tuple[Mailbox, ...] = ()
    max_bytes: int | None = None
    for path in files:
        doc = read_yaml(path) or {}
        if "max_attachment_bytes" in doc:
            max_bytes = int(doc["max_attachment_bytes"])
            if max_bytes <= 0:
                raise ValueError(f"{path}: max_attachment_bytes must be a positive number of bytes")
        for code, entry in (doc.get("regions") or {}).items():
            where = f"{path}: regions.{code}"
            if str(code) not in region_codes:
                # A typo would otherwise leave the example mailbox in place and deliver nothing.
                raise ValueError(f"{where}: not a region; regions: {', '.join(sorted(region_codes))}")
            delivery = (entry or {}).get("delivery", "email") if isinstance(entry, dict) else "email"
            if delivery not in ("email", "folder"):
                raise ValueError(f"{where}.delivery: must be 'email' or 'folder', not {delivery!r}")
            mailbox = _mailbox(entry, where) if delivery == "email" else None
            regions[str(code)] = RegionTarget(str(code), delivery, mailbox)
        if "national" in doc:
            national = tuple(_mailbox(e, f"{path}: national[{n}]") for n, e in enumerate(doc["national"] or []))
    if max_bytes is None:
        raise ValueError(f"{files[0]}: max_attachment_bytes is missing")
    return Targets(regions, national, max_bytes)


# --- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workbook:
    """One written workbook and the figures its email quotes."""

    scope: str  # a region code, or NATIONAL
    title: str  # "London", "England and Wales"
    path: Path
    figures: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Copy:
    source: Path
    target: Path


@dataclass
class DeliveryPlan:
    day: dt.date
    mails: list[Mail]
    copies: list[Copy]
    unrouted: list[str]  # scopes with nowhere to go (no entry, or folder delivery with no folder set)


def file_name(scope: str, day: dt.date) -> str:
    """What the recipient sees: the scope and the day, never where it sits on the server."""
    return f"case-transfer-tracker-{scope.lower()}-{day.isoformat()}.xlsx"


def _workbook_file(path: Path, name: str) -> Sequence[Attachment]:
    from tasks.notify.email import Attachment

    return [Attachment(name, path.read_bytes(), *XLSX)]


def plan_delivery(day: dt.date, workbooks: Sequence[Workbook], targets: Targets, settings: Settings) -> DeliveryPlan:
    plan = DeliveryPlan(day, [], [], [])
    for wb in workbooks:
        if wb.scope == NATIONAL:
            mailboxes = list(targets.national)
        else:
            target = targets.regions.get(wb.scope)
            if target is None:
                plan.unrouted.append(f"{wb.scope}: no entry in config/tracker_mailboxes.yaml")
                continue
            if target.delivery == "folder":
                if settings.tracker_shared_dir is None:
                    plan.unrouted.append(f"{wb.scope}: delivery is 'folder' but tracker_shared_dir is not set")
                else:
                    folder = settings.tracker_shared_dir / wb.scope
                    plan.copies.append(Copy(wb.path, folder / f"{wb.scope}-{day.isoformat()}.xlsx"))
                continue
            assert target.mailbox is not None
            mailboxes = [target.mailbox]
        size = wb.path.stat().st_size
        attach = size <= targets.max_attachment_bytes
        name = file_name(wb.scope, day)
        link = (
            f"{settings.tracker_base_url.rstrip('/')}/{day.isoformat()}/{wb.path.name}"
            if settings.tracker_base_url and not attach
            else None
        )
        for mb in mailboxes:
            context = {
                "title": wb.title,
                "scope": wb.scope,
                "day": day,
                "attached": attach,
                "file_name": name,
                "size_mb": round(size / 1_000_000, 1),
                "link": link,
                "figures": dict(wb.figures),
                "example_mailbox": mb.example,
            }
            # The key names the workbook, not its bytes: a rebuilt file the same night is the same email.
            mail = Mail(
                KIND,
                TEMPLATE,
                mb.address,
                day,
                f"tracker:{wb.scope}",
                context,
                placeholder=mb.example,
                label=f"{wb.scope} to {mb.address}",
            )
            # Read when the email is rendered: a night's second run reads no file it will not send.
            plan.mails.append(replace(mail, attachments=partial(_workbook_file, wb.path, name)) if attach else mail)
    return plan


# --- the whole delivery -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackerFacts(Facts):
    """What besides email the night's delivery did, for the summary."""

    copied: int = 0  # workbooks copied to shared folders
    unrouted: tuple[str, ...] = ()

    def day_off(self, day: dt.date) -> str:
        return f"{day:%A %d %B %Y} is not a working day: trackers written, not delivered"

    def delivery(self, summary: Summary[Any]) -> str:
        s = summary
        return (
            f"trackers for {s.day:%A %d %B %Y}: sent {s.sent}, skipped {s.skipped} already sent, failed {s.failed}"
            + (f" via {s.transport}" if s.transport else "")
            + f"; copied {self.copied} to shared folders"
        )

    def notes(self, summary: Summary[Any]) -> list[str]:
        out = []
        if summary.held:
            out.append(
                f"held {len(summary.held)} for example mailboxes (config/tracker_mailboxes.yaml): {', '.join(summary.held)}"
            )
        return out + [f"not delivered: {u}" for u in self.unrouted]

    def not_delivered(self, summary: Summary[Any]) -> str:
        return f"{summary.failed} tracker emails not sent; they stay queued for the next run"


def _copy(c: Copy) -> None:
    c.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = c.target.with_name(f".{c.target.name}.{os.getpid()}.tmp")
    shutil.copyfile(c.source, tmp)
    # Renamed into place: a region opening the folder never sees half a workbook.
    os.replace(tmp, c.target)


@dataclass(frozen=True)
class TrackerDelivery(MailJob[DeliveryPlan, TrackerFacts]):
    """The night's workbooks as a mail job: copied to shared folders first, then emailed."""

    workbooks: Sequence[Workbook]
    targets: Targets | None = None

    def plan(self, day: dt.date, url: str | None = None) -> DeliveryPlan:
        return plan_delivery(day, self.workbooks, self.targets or load_targets(), get_settings())

    def prepare(self, plan: DeliveryPlan, url: str | None = None, flow_run_id: str | None = None) -> int:
        for c in plan.copies:
            _copy(c)
        return len(plan.copies)

    def mails(self, plan: DeliveryPlan) -> list[Mail]:
        return plan.mails

    def facts(self, plan: DeliveryPlan | None, prepared: int | None = None, held: Sequence[Mail] = ()) -> TrackerFacts:
        if plan is None:
            return TrackerFacts()
        return TrackerFacts(copied=len(plan.copies), unrouted=tuple(plan.unrouted))


def deliver_trackers(
    day: dt.date,
    workbooks: Sequence[Workbook],
    url: str | None = None,
    transport: Transport | None = None,
    targets: Targets | None = None,
) -> Summary[TrackerFacts]:
    """Email (or copy) the night's workbooks, exactly once each. Raises NotDelivered after
    trying every message if any stayed queued."""
    return run_mail_job(TrackerDelivery(workbooks, targets), day, url, transport)


def workbooks_of(results: Sequence[Any], national: Path) -> list[Workbook]:
    """The night's workbooks from the tracker's RegionResults (tasks.reports.tracker), with the figures
    each region's email quotes. The national email quotes none: a transfer between two regions is
    in both regions' counts, and the national workbook's Summary sheet has the distinct totals."""
    books = [
        Workbook(
            r.region_code,
            r.region_name,
            Path(r.path),
            {"open": r.open, "open_overdue": r.open_overdue, "overdue_actions": r.overdue_actions},
        )
        for r in results
    ]
    books.append(Workbook(NATIONAL, "England and Wales", national))
    return books


# --- the Prefect artifact -----------------------------------------------------------------------


def workbook_link(path: Path, day: dt.date, settings: Settings | None = None) -> str:
    """Where a manager opens a workbook: under tracker_base_url when set, else its file on the server."""
    settings = settings or get_settings()
    if settings.tracker_base_url:
        return f"{settings.tracker_base_url.rstrip('/')}/{day.isoformat()}/{path.name}"
    return str(path)


def _md(text: str) -> str:
    """Plain text in a markdown table cell (no pipes, no markup from a name or a mailbox)."""
    return text.replace("|", "/").replace("\n", " ").replace("[", "(").replace("]", ")")


def artifact_markdown(
    day: dt.date,
    results: Sequence[Any],
    national: Path,
    headline: Mapping[str, Any],
    transfer_working_days: int,
    failed: Sequence[Any] = (),
    delivered: Sequence[str] = (),
) -> str:
    """The nightly tracker's summary artifact: the day's headline figures, each region's workbook
    linked with its own figures, and every message not delivered (the sent-log's failed rows)."""
    settings = get_settings()
    share = headline.get("completed_in_time_share")
    lines = [
        f"# MIS tracker, {day:%d %B %Y}",
        "",
        f"- Open transfers: **{headline['open']}**",
        f"- Open and overdue: **{headline['open_overdue']}**",
        f"- Completed within {transfer_working_days} working days: **{'-' if share is None else f'{share:.0%}'}**"
        f" ({headline['completed']} completed)",
        f"- PDUs flagged slow at police checks: **{', '.join(headline['slow_police']) or 'none'}**",
        "",
        f"| Region | Workbook | Open | Open and overdue | Completed within {transfer_working_days} wd | Slow police PDUs |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        s = r.completed_in_time_share
        lines.append(
            f"| {_md(r.region_name)} ({r.region_code}) | [{Path(r.path).name}]({workbook_link(Path(r.path), day, settings)}) "
            f"| {r.open} | {r.open_overdue} | {'-' if s is None else f'{s:.0%}'} | {_md(', '.join(r.slow_police_pdus)) or '-'} |"
        )
    lines.append(f"| England and Wales | [{national.name}]({workbook_link(national, day, settings)}) | | | | |")
    if delivered:
        lines += ["", "## Delivery", "", *[f"- {_md(d)}" for d in delivered]]
    lines += ["", "## Not delivered", ""]
    if failed:
        lines += [
            f"- {f.day:%d %B %Y}, {_md(f.kind)} to {_md(f.recipient)}: {_md(f.subject)} "
            f"({f.attempts} attempts; {_md((f.error or '')[:200])})"
            for f in failed
        ]
    else:
        lines.append("Every message has been delivered.")
    return "\n".join(lines)

"""Go-live: import the transfers in flight on a region's legacy spreadsheet tracker (issue 13).

Read a workbook (columns found by header through config/import_mapping.yaml, or a region's own
mapping on top of it), check every row, and store each good row as an NSI marked imported, with
the work already done recorded on its own dates. Every bad row is reported (row number, CRN,
reason, the raw values) in a report workbook beside the input; a bad row stores nothing.

Each good row is one transaction. A row stored before (the same CRN, date notified and kind) is
recognised by its request key and skipped, so importing a file twice creates nothing new. Flow
runs for the imported NSIs are started afterwards (`services.start_imported_runs`), apart from the store
work, at a rate the stack can take.

The parts, in the order an import takes them: import_mapping (the columns and words), legacy_tracker
(reading the sheet), import_rows (checking each row), imported_nsi (storing a good one),
import_report (what the import did, and the report workbook).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks.domain import transfers
from tasks.domain.import_mapping import UnreadableTracker, load_mapping
from tasks.domain.import_report import ImportResult, report_path, write_report
from tasks.domain.import_rows import BadRow, GoodRow, check_row
from tasks.domain.imported_nsi import store_row
from tasks.domain.legacy_tracker import read_sheet
from tasks.places.estate import load_estate
from tasks.settings import get_settings
from tasks.store.models import Action, Nsi
from tasks.store.unit_of_work import UnitOfWork


def _existing(session: Session, crns: Sequence[str]) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """(request key -> reference of NSIs already imported, CRN -> open NSIs as (reference, request key))."""
    keys: dict[str, str] = {}
    open_by_crn: dict[str, list[tuple[str, str]]] = {}
    for i in range(0, len(crns), 500):
        chunk = crns[i : i + 500]
        for ref, key, crn, status in session.execute(
            select(Nsi.reference, Nsi.request_key, Nsi.crn, Nsi.status).where(Nsi.crn.in_(chunk))
        ):
            if key.startswith("import:"):
                keys[key] = ref
            if status not in transfers.CLOSED:
                open_by_crn.setdefault(crn, []).append((ref, key))
    return keys, open_by_crn


def import_tracker(
    path: Path,
    *,
    sheet: str | None = None,
    mapping_path: Path | None = None,
    region: str | None = None,
    dry_run: bool = False,
    strict: bool = False,
    report: Path | None = None,
    url: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_count: Callable[[int], None] | None = None,
) -> ImportResult:
    """Check every row, store the good ones (one transaction each), report the bad ones (beside the
    input, or at `report`). `strict` refuses a tracker with any header the mapping does not know."""
    started = time.perf_counter()
    mapping = load_mapping(mapping_path)
    estate = load_estate()
    if region is not None and region.upper() not in estate.regions:
        raise UnreadableTracker(f"--region: {region!r} is not a region code; regions: {', '.join(sorted(estate.regions))}")
    region = region.upper() if region else None
    today = get_settings().current_date()
    header, rows = read_sheet(path, mapping, sheet)
    if strict and header.ignored:
        raise UnreadableTracker(
            f"--strict: {path.name} row {header.number}: headers the mapping does not know: "
            + "; ".join(f"{h!r}" + (f" ({hint})" if hint else "") for h, hint in header.ignored)
            + " (give their fields with --mapping)"
        )
    result = ImportResult(source=path.name, rows=len(rows), dry_run=dry_run, header=header)
    checked = [check_row(r, mapping, estate, region, today) for r in rows]
    goods = [c for c in checked if isinstance(c, GoodRow)]
    result.bad = [c for c in checked if isinstance(c, BadRow)]
    with UnitOfWork(url) as uow:
        imported, open_by_crn = _existing(uow.session, sorted({g.form.crn for g in goods}))
    seen: dict[str, int] = {}
    to_store: list[GoodRow] = []
    for g in goods:
        crn = g.form.crn
        if crn in seen:
            result.bad.append(BadRow(g.number, crn, [f"crn: {crn} is also on row {seen[crn]}; one in-flight transfer per CRN"],
                                     next(r.raw for r in rows if r.number == g.number)))  # fmt: skip
            continue
        seen[crn] = g.number
        if g.key in imported:
            result.skipped.append(imported[g.key])
            continue
        others = [ref for ref, key in open_by_crn.get(crn, []) if key != g.key]
        if others:
            result.bad.append(BadRow(g.number, crn, [f"crn: {crn} has an open NSI ({', '.join(others)}) that this file did not create"],
                                     next(r.raw for r in rows if r.number == g.number)))  # fmt: skip
            continue
        to_store.append(g)
    result.bad.sort(key=lambda b: b.number)
    out = report or report_path(path)
    if (result.bad or dry_run or header.ignored) and not _writable(out):
        # Said before anything is stored: a tracker on a read-only share needs --report elsewhere.
        raise UnreadableTracker(f"--report: cannot write the report to {out} (no such folder, or read-only); give --report PATH")
    if on_count is not None:
        on_count(len(to_store))
    if dry_run:
        result.created = [g.key for g in to_store]
    else:
        from tasks.store.session import session_factory

        make = session_factory(url)
        for g in to_store:
            session = make()
            try:
                ref = store_row(session, g, path.name, today, estate)
                session.commit()
                result.created.append(ref)
            except IntegrityError:
                # The same row stored by another import meanwhile: the first one stands.
                session.rollback()
                result.skipped.append(g.key)
            finally:
                session.close()
            if progress is not None:
                progress(1)
    if result.bad or dry_run or header.ignored:
        result.report = write_report(out, result)
    result.seconds = time.perf_counter() - started
    return result


def _writable(out: Path) -> bool:
    folder = out.parent
    return folder.is_dir() and os.access(folder, os.W_OK) and (not out.exists() or os.access(out, os.W_OK))


# --------------------------------------------------------------------------- flow runs, afterwards


def imported_without_run(url: str | None = None, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(reference, nsi_type, request key) of imported NSIs with work open whose flow run has not started yet."""
    with UnitOfWork(url) as uow:
        q = (
            select(Nsi.reference, Nsi.nsi_type, Nsi.request_key)
            .where(
                Nsi.imported_on.is_not(None),
                Nsi.flow_run_id.is_(None),
                # A completed transfer still has a run while its after-the-move actions are open.
                or_(
                    Nsi.status.not_in(transfers.CLOSED),
                    and_(Nsi.status == "completed", exists().where(Action.nsi_id == Nsi.id, Action.status == "open")),
                ),
            )
            .order_by(Nsi.id)
        )
        if limit:
            q = q.limit(limit)
        return [tuple(r) for r in uow.session.execute(q)]  # type: ignore[misc]

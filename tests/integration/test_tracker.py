"""The nightly MIS tracker and the synthetic-data seed, on a real SQLite store: workbooks are
written for real and opened back with openpyxl; every count is checked against SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import openpyxl
import pytest
from conftest import demo_form
from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, func, or_, select
from support.waits import prefect_api
from typer.testing import CliRunner

from tasks.calendar import get_calendar
from tasks.demo.seed import SeedExists, seed
from tasks.demo.synthetic import OUTCOME_STEP, STEPS, SUPPORT_STEP, generate
from tasks.domain import documents, transfer_views, transfers
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.form import TransferForm, parse_form
from tasks.domain.policy import get_policy
from tasks.places.estate import load_estate
from tasks.places.placement import check_placement
from tasks.reports.tracker import (
    TrackerRun,
    load_data,
    load_tracker_config,
    plain_words,
    region_input,
    run_tracker,
    write_region,
)
from tasks.settings import reset_settings
from tasks.store.migrate import upgrade
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.session import get_engine
from tasks.store.unit_of_work import UnitOfWork

AS_OF = dt.date(2026, 12, 21)
N_SEEDED = 3000
SEED = 11
# Text a user typed that a spreadsheet would run as a formula if written carelessly.
HOSTILE_NAMES = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(1,2)", "O'Neil & Sons <Ltd>"]
ODD_NAME = "Bell\x07 Tab\tEnd"  # a control character and a tab: escaped in the XML, as XlsxWriter does
LAO_NAME = "Quentin Secretname"
REFERENCE = re.compile(r"^(CT|TM)\d{6}$")


def _clear() -> None:
    from tasks.domain.policy import get_policy

    reset_settings()
    get_policy.cache_clear()
    get_engine.cache_clear()


@dataclass
class Store:
    url: str
    base: Path
    references: dict[str, str]  # name -> reference, for the NSIs raised through register_nsi


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One seeded store for the module (seeding and writing 13 workbooks per test would be slow)."""
    base = tmp_path_factory.mktemp("tracker")
    url = f"sqlite:///{base / 'store.sqlite'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CASETRANSFER_DATABASE_URL", url)
        mp.setenv("CASETRANSFER_TODAY", AS_OF.isoformat())
        _clear()
        upgrade(url)
        seed(N_SEEDED, SEED, AS_OF)
        refs = {}
        # London (N07) to Manchester South (N50): raised like a real transfer, through the store service.
        placement = transfers.Placement("N50GMS", 280.0)
        for i, name in enumerate(HOSTILE_NAMES):
            form = parse_form(demo_form(name=name, crn=f"H{i:06d}", raised_on="2026-12-01"))
            refs[name] = transfers.register_nsi(form, f"hostile-{i}", placement=placement)
        form = parse_form(demo_form(name=ODD_NAME, crn="Z000001", raised_on="2026-12-01"))
        refs[ODD_NAME] = transfers.register_nsi(form, "odd-1", placement=placement)
        form = parse_form(demo_form(name=LAO_NAME, crn="Y654321", lao=True, raised_on="2026-12-02"))
        refs[LAO_NAME] = transfers.register_nsi(form, "lao-1", placement=placement)
        yield Store(url, base, refs)
    _clear()


@pytest.fixture(scope="module")
def night(store: Store) -> TrackerRun:
    return run_tracker(AS_OF, store.base / "trackers", url=store.url)


# --------------------------------------------------------------------------- helpers


def window_start() -> dt.date:
    return AS_OF - relativedelta(months=load_tracker_config().reporting_window_months)


def in_scope() -> Any:
    return and_(Nsi.raised_on <= AS_OF, or_(Nsi.closed_on.is_(None), Nsi.closed_on >= window_start()))


def store_nsis(url: str) -> list[Any]:
    with get_engine(url).connect() as conn:
        return list(conn.execute(select(Nsi.__table__).where(in_scope())))


def region_refs(url: str, code: str) -> set[str]:
    return {r.reference for r in store_nsis(url) if code in (r.transferring_region_code, r.receiving_region_code)}


def sheet_rows(ws: Any) -> list[tuple[Any, ...]]:
    """The list's data rows (below the header, above the first empty row: notes sit under it)."""
    rows = []
    for row in ws.iter_rows(min_row=2, values_only=True):
        if all(v is None for v in row):
            break
        rows.append(row)
    return rows


def header(ws: Any) -> list[str]:
    return [c.value for c in ws[1] if c.value is not None]


def column(ws: Any, name: str) -> list[Any]:
    i = header(ws).index(name)
    return [r[i] for r in sheet_rows(ws)]


def block(ws: Any, title: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A titled block of the Summary sheet: its header and its rows."""
    rows = list(ws.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r[0] == title)
    head = [v for v in rows[start + 1] if v is not None]
    body = []
    for r in rows[start + 2 :]:
        if r[0] is None:
            break
        body.append(r[: len(head)])
    return head, body


def workbook(night: TrackerRun, code: str) -> Any:
    return openpyxl.load_workbook(night.folder / f"{code}.xlsx")


# --------------------------------------------------------------------------- the workbooks


def test_a_workbook_per_region_and_a_national_summary_in_a_dated_folder(night: TrackerRun) -> None:
    regions = load_estate().regions
    assert night.folder.name == AS_OF.isoformat()
    assert sorted(p.name for p in night.folder.glob("*.xlsx")) == sorted([f"{c}.xlsx" for c in regions] + ["national.xlsx"])
    wb = openpyxl.load_workbook(night.national)
    assert {"Summary", "Police checks", "Compliance"} <= set(wb.sheetnames)


def test_transfers_list_exactly_the_regions_nsis_in_the_store(store: Store, night: TrackerRun) -> None:
    for code in load_estate().regions:
        wb = workbook(night, code)
        assert wb.sheetnames == [
            "Summary",
            "Transfers",
            "Actions",
            "Police checks",
            "Compliance",
            "Temporary moves",
            "POM-COM handovers",
            "Challenges and refusals",
            "Escalations",
            "Record of absences",
        ]
        refs = column(wb["Transfers"], "Reference")
        expected = region_refs(store.url, code)
        assert len(refs) == len(set(refs)) == len(expected) > 0
        assert set(refs) == expected
        _, body = block(wb["Summary"], "NSIs by type and status")
        assert body[-1][0] == "All" and body[-1][4] == len(expected)


def test_summary_counts_by_type_status_and_direction_agree_with_sql(store: Store, night: TrackerRun) -> None:
    nsis = store_nsis(store.url)
    labels = {"case_transfer": "Case Transfer", "temporary_move": "Temporary Move"}
    for code in ("N07", "N50", "N56"):
        expected: Counter[tuple[str, str, str]] = Counter()
        for r in nsis:
            if r.transferring_region_code == code:
                expected[(labels[r.nsi_type], plain_words([r.status])[0], "out")] += 1
            if r.receiving_region_code == code:
                expected[(labels[r.nsi_type], plain_words([r.status])[0], "in")] += 1
        _, body = block(workbook(night, code)["Summary"], "NSIs by type and status")
        got: Counter[tuple[str, str, str]] = Counter()
        for type_, status, out, inc, _total in body[:-1]:
            got[(type_, status, "out")] += out
            got[(type_, status, "in")] += inc
        assert +got == +expected


def test_actions_has_one_row_per_action_of_the_regions_nsis(store: Store, night: TrackerRun) -> None:
    code = "N07"
    refs = region_refs(store.url, code)
    with get_engine(store.url).connect() as conn:
        expected = conn.scalar(
            select(func.count()).select_from(Action.__table__.join(Nsi.__table__)).where(in_scope(), Nsi.reference.in_(refs))
        )
    ws = workbook(night, code)["Actions"]
    assert len(sheet_rows(ws)) == expected
    assert set(column(ws, "NSI")) <= refs


def test_a_region_workbook_never_contains_another_regions_cases(store: Store, night: TrackerRun) -> None:
    everything = {r.reference for r in store_nsis(store.url)}
    seen: set[str] = set()
    for code in load_estate().regions:
        mine = region_refs(store.url, code)
        wb = workbook(night, code)
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                for v in row:
                    if isinstance(v, str) and REFERENCE.match(v):
                        assert v in mine, f"{code}.xlsx sheet {ws.title} shows {v}, which is not {code}'s case"
                        seen.add(v)
    assert seen == everything  # every case shows up somewhere: the check above looked at real references


def test_text_that_looks_like_a_formula_is_written_as_plain_text(store: Store, night: TrackerRun) -> None:
    for code in ("N07", "N50"):  # the transferring and the receiving region
        path = night.folder / f"{code}.xlsx"
        ws = openpyxl.load_workbook(path)["Transfers"]
        refs = [c.value for c in ws["A"]]
        for name in HOSTILE_NAMES:
            cell = ws.cell(refs.index(store.references[name]) + 1, header(ws).index("Name") + 1)
            assert cell.value == name
            assert cell.data_type == "s"
        with zipfile.ZipFile(path) as z:
            for part in z.namelist():
                if part.startswith("xl/worksheets/sheet"):
                    assert "<f>" not in z.read(part).decode(), f"{code}.xlsx {part} holds a formula"


def test_rows_written_by_the_fast_path_are_the_cells_xlsxwriter_writes(store: Store, tmp_path: Path) -> None:
    """Book(fast_rows=True) splices generated rows into the file; XlsxWriter alone is the reference."""
    inp = region_input(load_data(AS_OF, store.url), "N07")
    fast, slow = (
        openpyxl.load_workbook(write_region(inp, tmp_path / f"{kind}.xlsx", fast_rows=kind == "fast").path)
        for kind in ("fast", "slow")
    )
    assert fast.sheetnames == slow.sheetnames
    for name in fast.sheetnames:
        a, b = fast[name], slow[name]
        assert (a.dimensions, a.freeze_panes, a.auto_filter.ref) == (b.dimensions, b.freeze_panes, b.auto_filter.ref), name
        assert [str(cf.sqref) for cf in a.conditional_formatting] == [str(cf.sqref) for cf in b.conditional_formatting], name
        assert {k: d.width for k, d in a.column_dimensions.items()} == {k: d.width for k, d in b.column_dimensions.items()}, name
        # A blank cell's format is not compared: the fast path leaves styled blanks in data row 1.
        cell = lambda c: (c.value, c.data_type, c.number_format if c.value is not None else None)  # noqa: E731
        for row_a, row_b in zip(a.iter_rows(), b.iter_rows(), strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                assert cell(x) == cell(y), f"{name}!{x.coordinate}"
    odd = next(r for r in fast["Transfers"].iter_rows(values_only=True) if r[0] == store.references[ODD_NAME])
    assert "Bell" in odd[2] and "End" in odd[2]


def test_a_limited_access_offenders_name_is_nowhere_but_the_crn_is(store: Store, night: TrackerRun) -> None:
    layout = load_tracker_config().layout
    for path in night.folder.glob("*.xlsx"):
        with zipfile.ZipFile(path) as z:
            for part in z.namelist():
                assert LAO_NAME not in z.read(part).decode(errors="ignore"), f"{path.name} {part}"
    lao = {r.reference: r.crn for r in store_nsis(store.url) if r.lao}
    assert len(lao) > 5  # the seed's LAO cases and ours
    ws = workbook(night, "N07")["Transfers"]
    h = header(ws)
    shown = {r[0]: r for r in sheet_rows(ws) if r[0] in lao}
    assert store.references[LAO_NAME] in shown
    for ref, row in shown.items():
        assert row[h.index("CRN")] == lao[ref]
        assert row[h.index("Name")] == layout.lao_name


def test_lists_have_date_cells_frozen_headers_filters_and_one_highlight_rule(night: TrackerRun) -> None:
    wb = workbook(night, "N55")
    for name in ("Transfers", "Actions", "Police checks", "Compliance", "Temporary moves"):
        ws = wb[name]
        n = len(sheet_rows(ws))
        assert ws.freeze_panes == "B2", name
        # The list is an Excel table (its own filter buttons and banded rows) over exactly its rows.
        (table,) = ws.tables.values()
        assert table.ref == f"A1:{openpyxl.utils.get_column_letter(len(header(ws)))}{max(n, 1) + 1}", name
        rules = [rule for cf in ws.conditional_formatting for rule in cf.rules]
        assert len(rules) == 1, name
        assert ws.column_dimensions["A"].width >= len(header(ws)[0])
    ws = wb["Transfers"]
    raised = ws.cell(2, header(ws).index("Raised") + 1)
    assert raised.is_date and isinstance(raised.value, dt.datetime)
    assert wb["Summary"]._charts, "the Summary sheet has its chart"


def test_days_overdue_agree_with_the_status_command(store: Store, night: TrackerRun) -> None:
    ws = workbook(night, "N51")["Actions"]
    h = header(ws)
    by_ref: dict[str, dict[str, int]] = {}
    for row in sheet_rows(ws):
        by_ref.setdefault(row[0], {})[row[h.index("Action")]] = row[h.index("Days overdue (working)")] or 0
    overdue_refs = sorted(ref for ref, acts in by_ref.items() if any(acts.values()))
    assert len(overdue_refs) > 5
    for ref in overdue_refs[:20] + sorted(by_ref)[:10]:
        view = transfer_views.status_of(ref, as_of=AS_OF, url=store.url)
        assert by_ref[ref] == {a.title: a.days_overdue for a in view.actions}, ref


def test_police_checks_flag_the_pdus_the_seed_made_slow(night: TrackerRun) -> None:
    rule = load_tracker_config().police_checks
    slow = set(generate(N_SEEDED, SEED, AS_OF).cols["slow_police_pdus"])
    by_name = {p.name: p.code for p in load_estate().pdus.values()}
    ws = openpyxl.load_workbook(night.national)["Police checks"]
    h = header(ws)
    flagged = set()
    for row in sheet_rows(ws):
        code = by_name[row[0]]
        returned, median, is_slow = (
            row[h.index("Returned")],
            row[h.index("Median working days to return")],
            row[h.index("Consistently slow")],
        )
        assert (is_slow == "Yes") == ((median or 0) > rule.slow_median_working_days and returned >= rule.slow_min_cases)
        if code in slow and returned >= rule.slow_min_cases:
            assert is_slow == "Yes", code
        if is_slow == "Yes":
            flagged.add(code)
    assert flagged and flagged <= slow


def test_compliance_diversity_measure_agrees_with_the_store(store: Store, night: TrackerRun) -> None:
    ws = workbook(night, "N07")["Compliance"]
    h = header(ws)
    policy_rows = [r for r in sheet_rows(ws) if str(r[h.index("Standard")]).startswith("Policy")]
    measures = {r[0] for r in policy_rows}
    assert len(measures) == len(load_tracker_config().compliance)
    assert "Documents received within 10 days" in measures  # the deadline comes from config/timescales.yaml
    row = next(r for r in policy_rows if r[0] == "Diversity needs recorded" and r[1] == "All")
    raised = [
        r
        for r in store_nsis(store.url)
        if "N07" in (r.transferring_region_code, r.receiving_region_code) and r.raised_on >= window_start()
    ]
    assert row[h.index("Due in period / applicable")] == len(raised)
    assert row[h.index("Met in time")] == sum(r.diversity_recorded for r in raised)
    for r in sheet_rows(ws):
        assert r[h.index("Share met")] is None or 0 <= r[h.index("Share met")] <= 1


def test_temporary_moves_past_the_caretaking_limit_are_flagged(store: Store, night: TrackerRun) -> None:
    months = get_policy().caretaking_months
    tms = {
        r.reference: r
        for r in store_nsis(store.url)
        if r.nsi_type == "temporary_move" and "N52" in (r.transferring_region_code, r.receiving_region_code)
    }
    ws = workbook(night, "N52")["Temporary moves"]
    h = header(ws)
    rows = sheet_rows(ws)
    assert {r[0] for r in rows} == set(tms)
    flagged = 0
    for row in rows:
        nsi = tms[row[0]]
        ended = nsi.closed_on if nsi.closed_on and nsi.closed_on <= AS_OF else AS_OF
        past = ended > nsi.move_on + relativedelta(months=months)
        assert (row[h.index(f"Past {months} months")] == "Yes") == past, row[0]
        assert row[h.index("Days so far")] == (ended - nsi.move_on).days
        flagged += past
    assert 0 < flagged < len(rows)


# --------------------------------------------------------------------------- the CLI and the flow


def test_cli_refuses_bad_input_naming_the_option(store: Store) -> None:
    from ops.cli import app

    runner = CliRunner()
    for args, option in (
        (["tracker", "--as-of", "2026-02-30"], "--as-of"),
        (["tracker", "--region", "N99"], "--region"),
        (["seed", "--transfers", "-5"], "--transfers"),
        (["seed", "--transfers", "10", "--as-of", "tomorrow"], "--as-of"),
        (["seed", "--transfers", "10", "--seed", str(SEED)], "--seed"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert option in result.output, (args, result.output)


def test_cli_writes_one_region_and_the_national_summary(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ops.cli import app

    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", store.url)
    reset_settings()
    result = CliRunner().invoke(app, ["tracker", "--as-of", AS_OF.isoformat(), "--out", str(tmp_path), "--region", "n56"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / AS_OF.isoformat()).glob("*.xlsx")) == ["N56.xlsx", "national.xlsx"]
    assert set(
        column(openpyxl.load_workbook(tmp_path / AS_OF.isoformat() / "N56.xlsx")["Transfers"], "Reference")
    ) == region_refs(store.url, "N56")


@pytest.fixture
def prefect_harness(prefect_stack: Any) -> Iterator[None]:
    """The flow runs in this process against the shared real server, as a deployment's run would."""
    with prefect_api(prefect_stack):
        yield


@pytest.mark.prefect
def test_the_nightly_tracker_flow_writes_the_workbooks_and_publishes_a_table(
    store: Store, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.nightly_tracker import nightly_tracker

    monkeypatch.setenv("CASETRANSFER_DATABASE_URL", store.url)
    monkeypatch.setenv("CASETRANSFER_OUTBOX", str(tmp_path / "outbox"))
    reset_settings()
    result = nightly_tracker(as_of=AS_OF, out_dir=str(tmp_path), region="N57")
    folder = tmp_path / AS_OF.isoformat()
    assert result["regions"] == {"N57": str(folder / "N57.xlsx")}
    assert Path(result["national"]) == folder / "national.xlsx"
    assert set(column(openpyxl.load_workbook(folder / "N57.xlsx")["Transfers"], "Reference")) == region_refs(store.url, "N57")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-tracker"])))
    assert artifacts and artifacts[0].type == "table"
    rows = artifacts[0].data if isinstance(artifacts[0].data, list) else __import__("json").loads(artifacts[0].data)
    n57 = next(r for r in rows if r["region"].endswith("(N57)"))
    assert n57["nsis"] == len(region_refs(store.url, "N57")) and n57["workbook"] == str(folder / "N57.xlsx")
    # Delivered on a working day (example mailboxes, no SMTP: to the outbox), and summarised.
    assert len(list((tmp_path / "outbox").glob("mis_tracker_*.eml"))) == 2  # N57's and the national one
    with get_client(sync_client=True) as client:
        (summary,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-tracker-summary"])), limit=1
        )
    assert "- Open transfers: **" in str(summary.data) and f"[N57.xlsx]({folder / 'N57.xlsx'})" in str(summary.data)


# --------------------------------------------------------------------------- the seed


def test_seed_and_tracker_on_sqlite_and_postgresql(store_url: str, tmp_path: Path) -> None:
    """The store fixture of conftest: runs on SQLite, and on PostgreSQL where dates come back as
    date objects and the seed reserves ids from the sequence."""
    seed(300, 3, AS_OF, url=store_url)
    raised = transfers.register_nsi(
        parse_form(demo_form(raised_on="2026-12-01")), "after-seed", placement=transfers.Placement("N50GMS", 280.0)
    )
    with get_engine(store_url).connect() as conn:
        rows = list(conn.execute(select(Nsi.id, Nsi.reference, Nsi.nsi_type)))
    assert len(rows) == 301 and all(
        r.reference == ("TM" if r.nsi_type == "temporary_move" else "CT") + f"{r.id:06d}" for r in rows
    )
    assert raised == f"CT{max(r.id for r in rows):06d}"  # the sequence moved on past the seeded ids
    run = run_tracker(AS_OF, tmp_path, region="N07", url=store_url, workers=1)
    refs = set(column(openpyxl.load_workbook(run.folder / "N07.xlsx")["Transfers"], "Reference"))
    assert refs == region_refs(store_url, "N07") and raised in refs


def test_seed_is_deterministic_for_a_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dumps = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.sqlite"
        upgrade(url)
        seed(400, 5, AS_OF, url=url)
        with get_engine(url).connect() as conn:
            dumps.append(
                [
                    [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
                    for t in (Nsi.__table__, Action.__table__, StepRecord.__table__, HistoryEntry.__table__)
                ]
            )
    assert dumps[0] == dumps[1]
    assert dumps[0][0] != [tuple(r) for r in _seed_other(tmp_path)]  # a different seed gives different data


def _seed_other(tmp_path: Path) -> list[Any]:
    url = f"sqlite:///{tmp_path / 'c'}.sqlite"
    upgrade(url)
    seed(400, 6, AS_OF, url=url)
    with get_engine(url).connect() as conn:
        return list(conn.execute(select(Nsi.__table__).order_by(Nsi.id)))


def test_seed_follows_the_inspections_case_profile(store: Store) -> None:
    with get_engine(store.url).connect() as conn:
        rows = list(conn.execute(select(Nsi.__table__).where(Nsi.request_key.like(f"seed-{SEED}-%"))))
    n = len(rows)
    assert n == N_SEEDED
    share = lambda pred: sum(1 for r in rows if pred(r)) / n  # noqa: E731
    assert 0.15 <= share(lambda r: r.rosh in ("High", "Very High")) <= 0.27
    assert 0.06 <= share(lambda r: r.mappa_category is not None) <= 0.14
    assert 0.28 <= share(lambda r: r.nsi_type == "temporary_move") <= 0.38
    assert 0 < share(lambda r: r.lao) < 0.05
    assert 0.05 < share(lambda r: not r.diversity_recorded) < 0.3
    regions = set(load_estate().regions)
    assert {r.transferring_region_code for r in rows} == regions == {r.receiving_region_code for r in rows}
    statuses = {r.status for r in rows}
    assert {"completed", "refused", "withdrawn", "returned", "converted", "ended", "raised"} <= statuses
    assert {f"awaiting_{s}" for s in STEPS} <= statuses
    estate = load_estate()
    for r in rows:
        assert AS_OF - relativedelta(months=12) < r.raised_on <= AS_OF
        assert r.receiving_pdu_code != r.transferring_pdu_code and estate.pdus[r.receiving_pdu_code].geographic
        team = estate.teams[r.transferring_team_code]
        assert (team.pdu_code, team.region_code) == (r.transferring_pdu_code, r.transferring_region_code)
        assert r.reference == ("TM" if r.nsi_type == "temporary_move" else "CT") + f"{r.id:06d}"


def test_seeded_actions_are_the_action_list_a_flow_would_plan(store: Store) -> None:
    policy, calendar = get_policy(), get_calendar()
    clock_names = {f.name for f in dataclasses.fields(Clocks)}
    with UnitOfWork(store.url) as uow:
        nsis = uow.session.scalars(select(Nsi).where(Nsi.request_key.like(f"seed-{SEED}-%")).order_by(Nsi.id).limit(400)).all()
        assert {n.nsi_type for n in nsis} == {"case_transfer", "temporary_move"}
        for nsi in nsis:
            form = TransferForm.model_validate(nsi.form)
            facts = Facts(form, nearby_pdu=(nsi.distance_km or 1e9) < policy.nearby_pdu_km)
            starts = {
                "raised": nsi.raised_on,
                "received": nsi.received_on,
                "move": nsi.move_on or nsi.received_on,
                # A transfer's allocation restarts the reallocation clock; a move's return, the review.
                "reallocation": nsi.allocated_on if nsi.nsi_type == "case_transfer" else None,
                "returned": nsi.closed_on if nsi.status == "returned" else None,
            }
            clocks = Clocks(**{k: v for k, v in starts.items() if k in clock_names})
            plan = SimpleNamespace(form=nsi.form, actions=[Action(code=p.code, owner_role=p.owner_role, due_on=p.due_on)
                                                           for p in plan_actions(facts, clocks, policy, calendar)])  # fmt: skip
            documents.plan_items(plan)  # the checklist's lines, as Transfer.plan adds them
            assert {(a.code, a.due_on) for a in nsi.actions} == {(a.code, a.due_on) for a in plan.actions}, nsi.reference
            if nsi.nsi_type == "case_transfer":
                assert [s.step for s in nsi.steps] == list(STEPS[: len(nsi.steps)])


def test_seeded_nsis_are_the_rows_raising_stores_moved_on_by_their_steps_effects(store: Store) -> None:
    policy, calendar = get_policy(), get_calendar()
    with UnitOfWork(store.url) as uow:
        nsis = uow.session.scalars(select(Nsi).where(Nsi.request_key.like(f"seed-{SEED}-%")).order_by(Nsi.id).limit(400)).all()
        for nsi in nsis:
            form = TransferForm.model_validate(nsi.form)
            placement = transfers.Placement(nsi.receiving_pdu_code, nsi.distance_km)
            raised = transfers.new_nsi(
                form, nsi.request_key, policy, 1, raised=nsi.raised_on, received=nsi.received_on, move=nsi.move_on,
                due=transfer_due(nsi.raised_on, policy, calendar, form.nsi_type),
                placed=check_placement(form, placement, policy), placement=placement,
            )  # fmt: skip
            for column in (
                "nsi_type", "crn", "name", "rosh", "lao", "mappa_level", "due_on", "shape_version", "form",
                "transferring_region_code", "transferring_team_code", "receiving_region_code", "receiving_pdu_code",
            ):  # fmt: skip
                assert getattr(nsi, column) == getattr(raised, column), (nsi.reference, column)
            if nsi.nsi_type == "temporary_move":
                assert nsi.responsible_officer == nsi.transferring_practitioner  # a temporary move never moves management
            rules = {r.code: r for r in policy.actions}  # the checklist's lines have none: no step, the received clock
            for step in nsi.steps:  # the actions a step finishes are done the day its work was done
                for action in nsi.actions:
                    if action.code in rules and rules[action.code].step == step.step:
                        assert (action.status, action.done_on) == ("done", step.done_on), (nsi.reference, action.code)
            if nsi.closed_on is not None and nsi.status != "completed":  # closing cancels what is still open
                assert all(a.status != "open" or (a.code in rules and rules[a.code].clock == "returned") for a in nsi.actions), nsi.reference


def test_seed_steps_are_the_flows_steps_and_their_answers_validate(store: Store) -> None:
    import flows.steps as flow_steps

    assert STEPS == tuple(flow_steps.CASE_TRANSFER_STEPS)
    tm_steps = getattr(flow_steps, "TEMPORARY_MOVE_STEPS", None)
    if tm_steps is not None:
        assert (SUPPORT_STEP, OUTCOME_STEP) == tuple(tm_steps)
    with get_engine(store.url).connect() as conn:
        records = list(conn.execute(select(StepRecord.step, StepRecord.answer).order_by(StepRecord.id).limit(3000)))
    assert set(STEPS) <= {r.step for r in records} <= set(flow_steps.STEP_FORMS)
    for r in records:
        flow_steps.validate_step(r.step, r.answer)


def test_the_same_seed_twice_is_refused_and_writes_nothing(store: Store) -> None:
    with get_engine(store.url).connect() as conn:
        before = conn.scalar(select(func.count()).select_from(Nsi))
    with pytest.raises(SeedExists):
        seed(10, SEED, AS_OF, url=store.url)
    with get_engine(store.url).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Nsi)) == before
    assert np.array_equal(generate(50, 1, AS_OF).cols["raised"], generate(50, 1, AS_OF).cols["raised"])

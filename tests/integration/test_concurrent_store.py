"""The concurrent shape's rules in the store, on SQLite and PostgreSQL: what opens when, work
dated when it was done (and corrected), challenges about risk, disputed refusals. No Prefect:
`progress` is what the transfer's run calls each time it wakes."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest
from conftest import TODAY, demo_form, pin_today

from tasks.domain import transfer_views, transfers
from tasks.domain.form import parse_form

RAISED = dt.date(2026, 12, 14)
ALLOCATION = {"recorded_by": "Kim SPO", "practitioner": "Pat Receiver", "team_code": "N50CAD", "done_on": "2026-12-15"}
STRONG = ["Risk of harm would increase and could not be managed at the new address"]


def raise_transfer(key: str = "ct-1", **changes: object) -> str:
    changes.setdefault("raised_on", RAISED.isoformat())
    return transfers.register_nsi(parse_form(demo_form(**changes)), key)


def opened(ref: str) -> set[str]:
    """The tasks the transfer's run starts now (each run noted as started, as the run does)."""
    started = transfers.progress(ref).to_start
    for t in started:
        transfers.task_started(ref, t.task, t.round, f"run-{t.task}-{t.round}")
    return {t.task for t in started}


def record(ref: str, task: str, **answer: object) -> str:
    return transfers.apply_step(ref, task, {"recorded_by": "Someone", **answer})


def done_on(ref: str, code: str) -> dt.date | None:
    return next(a.done_on for a in transfer_views.status_of(ref).actions if a.code == code)


def test_a_new_case_transfer_opens_with_allocation_and_the_transferring_sides_own_work(store_url):
    ref = raise_transfer(victim_contact=True)
    assert transfer_views.shape_of(ref) == 2 and transfer_views.status_of(ref).status == "awaiting_allocation"
    assert opened(ref) == {"allocation", "vlo_liaison", "documents_sent"}  # the form's checklist: sent item by item
    assert opened(ref) == set()  # started once: the next wake-up opens nothing again


def test_after_allocation_everything_whose_gate_is_open_waits_at_once(store_url):
    ref = raise_transfer()
    opened(ref)
    record(ref, "allocation", **ALLOCATION)
    assert opened(ref) == {
        "address_assessment", "police_checks", "safeguarding_checks", "documents", "handover",
        "oasys_reassessment", "plan_review", "court_application", "first_appointment",
    }  # fmt: skip
    assert "completion" not in opened(ref)


def test_police_checks_recorded_before_the_address_assessment_are_dated_by_their_return(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "police_checks", returned_on="2026-12-16")
    assert done_on(ref, "police_checks") == dt.date(2026, 12, 16) and done_on(ref, "allocate") == dt.date(2026, 12, 15)
    assert done_on(ref, "address_assessment") is None
    assert transfer_views.status_of(ref).status == "in_progress"


def test_a_done_date_in_the_future_or_before_the_nsi_was_raised_is_refused_naming_the_field(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    with pytest.raises(transfers.StepRefused) as future:
        record(ref, "documents", done_on=(TODAY + dt.timedelta(days=1)).isoformat())
    assert future.value.field == "done_on" and "future" in str(future.value)
    with pytest.raises(transfers.StepRefused) as early:
        record(ref, "police_checks", returned_on="2026-12-01")
    assert early.value.field == "returned_on" and "before the NSI was raised" in str(early.value)
    assert "documents" not in transfer_views.recorded_steps(ref) and "police_checks" not in transfer_views.recorded_steps(ref)


def test_a_task_before_its_gate_is_open_is_refused(store_url):
    ref = raise_transfer()
    with pytest.raises(transfers.StepRefused) as exc:
        record(ref, "police_checks", returned_on="2026-12-16")
    assert "opens after allocation" in str(exc.value)


def test_a_corrected_done_date_reaches_the_action_and_the_tracker_and_the_history_keeps_both(store_url, tmp_path):
    from tasks.reports.tracker import run_tracker

    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "police_checks", returned_on="2026-12-16")
    assert transfers.correct(ref, "police_checks", dt.date(2026, 12, 17), "Misread the email", "Admin A") == dt.date(2026, 12, 16)
    assert done_on(ref, "police_checks") == dt.date(2026, 12, 17)
    assert transfer_views.recorded_steps(ref)["police_checks"]["returned_on"] == "2026-12-17"
    details = [h.detail for h in transfer_views.status_of(ref).history]
    assert any("(done 2026-12-16)" in d for d in details)
    assert any("police checks done on 2026-12-17 (was 2026-12-16): Misread the email" in d for d in details)
    with pytest.raises(transfers.StepRefused):
        transfers.correct(ref, "address_assessment", dt.date(2026, 12, 17), "not recorded yet", "Admin A")
    run = run_tracker(TODAY, tmp_path)
    region = next(r for r in run.regions if r.nsis)
    ws = openpyxl.load_workbook(region.path)["Actions"]
    rows = list(ws.iter_rows(values_only=True))
    head = list(rows[0])
    police = [r for r in rows[1:] if r[head.index("NSI")] == ref and "police" in str(r[head.index("Action")]).lower()]
    assert police and police[0][head.index("Done")].date() == dt.date(2026, 12, 17)


def test_completion_waits_for_the_required_tasks_and_for_an_open_challenge(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    with pytest.raises(transfers.StepRefused) as exc:
        record(ref, "completion", responsible_officer="Pat Receiver")
    assert "completion waits for" in str(exc.value) and "documents" in str(exc.value)
    for task, answer in (("address_assessment", {"method": "desktop", "suitable": True}), ("police_checks", {}),
                         ("safeguarding_checks", {}), ("documents", {}), ("handover", {})):  # fmt: skip
        record(ref, task, **answer)
    assert "completion" in opened(ref)
    seq, _ = transfers.raise_challenge(ref, "Victim nearby", "Pat Receiver", "receiving_pp")
    progress = transfers.progress(ref)
    # Completion waits while the challenge is open: its task closes, to reopen once it is settled.
    assert {t.task for t in progress.to_start} == {f"challenge-{seq}"} and progress.to_stop == ["run-completion-1"]
    with pytest.raises(transfers.StepRefused) as waits:
        record(ref, "completion", responsible_officer="Pat Receiver")
    assert "challenge 1 about risk is open" in str(waits.value)
    record(ref, "challenge-1", outcome="withdraw")
    assert {t.task: t.round for t in transfers.progress(ref).to_start} == {"completion": 2}
    assert record(ref, "completion", responsible_officer="Pat Receiver") == "completed"
    # After the move: the reassessment is still open after completion, and its task stays open.
    assert "oasys_reassessment" in {t.task for t in transfer_views.status_of(ref).tasks}
    assert transfers.progress(ref).finished and transfers.progress(ref).to_stop == []


def test_one_challenge_at_a_time_and_only_from_the_receiving_side(store_url):
    ref = raise_transfer()
    with pytest.raises(transfers.StepRefused) as role:
        transfers.raise_challenge(ref, "x", "Sam", "transferring_pp")
    assert role.value.field == "role"
    transfers.raise_challenge(ref, "Victim nearby", "Kim SPO", "receiving_spo")
    with pytest.raises(transfers.StepRefused) as again:
        transfers.raise_challenge(ref, "Another", "Kim SPO", "receiving_spo")
    assert "one at a time" in str(again.value)


def test_a_challenge_upheld_only_for_no_local_connection_is_rejected_with_the_policy_quoted(store_url):
    ref = raise_transfer()
    transfers.raise_challenge(ref, "No ties to the area", "Kim SPO", "receiving_spo")
    with pytest.raises(transfers.StepRefused) as exc:
        record(ref, "challenge-1", outcome="uphold", reasons=["No local connection"])
    assert "not enough by itself" in str(exc.value) and "Refusal of a case transfer should only be made" in str(exc.value)
    assert transfer_views.status_of(ref).status == "challenged"


def test_an_upheld_challenge_refuses_cancels_the_tasks_and_an_overturned_dispute_reopens_them_as_they_stood(store_url, monkeypatch):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    record(ref, "documents")
    transfers.progress(ref)  # the tasks open; their runs start:
    for row in transfer_views.status_of(ref).tasks:
        transfers.task_started(ref, row.task, row.round, f"run-{row.task}")
    transfers.raise_challenge(ref, "Victim nearby", "Pat Receiver", "receiving_pp")
    transfers.progress(ref)
    record(ref, "challenge-1", outcome="uphold", reasons=STRONG, evidence="Victim at 12 Oak Road")
    view = transfer_views.status_of(ref)
    assert view.status == "refused" and {a.status for a in view.actions if a.code != "documents"} <= {"cancelled", "done"}
    progress = transfers.progress(ref)
    assert progress.finished and "run-police_checks" in progress.to_stop and progress.to_start == []
    # A dispute after the period is refused; within it, the head of the receiving PDU settles it.
    pin_today(monkeypatch, dt.date(2027, 1, 29))
    with pytest.raises(transfers.StepRefused) as late:
        transfers.raise_dispute(ref, "The victim moved", "Jo SPO")
    assert "period to dispute the refusal ended" in str(late.value)
    pin_today(monkeypatch, TODAY)
    transfers.raise_dispute(ref, "The victim moved", "Jo SPO")
    assert {t.task for t in transfers.progress(ref).to_start} == {"dispute-1"}
    record(ref, "dispute-1", outcome="overturn", notes="Victim no longer local")
    reopened = transfers.progress(ref)
    assert not reopened.finished
    again = {t.task: t.round for t in reopened.to_start}
    assert again["police_checks"] == 2 and "documents" not in again  # done work stays done
    assert done_on(ref, "documents") is not None


def test_a_confirmed_dispute_leaves_the_refusal_standing(store_url):
    ref = raise_transfer()
    transfers.raise_challenge(ref, "Victim nearby", "Kim SPO", "receiving_spo")
    record(ref, "challenge-1", outcome="uphold", reasons=STRONG, evidence="Victim at 12 Oak Road")
    transfers.raise_dispute(ref, "The victim moved", "Jo SPO")
    record(ref, "dispute-1", outcome="confirm", notes="Victim still local: police confirmed")
    view = transfer_views.status_of(ref)
    assert view.status == "refused" and view.challenges[0].dispute_status == "confirmed"
    with pytest.raises(transfers.StepRefused):
        transfers.raise_dispute(ref, "again", "Jo SPO")


def test_a_withdrawal_returns_the_transfers_run_and_every_open_tasks_run_to_stop(store_url):
    ref = raise_transfer()
    transfers.set_transfer_run(ref, "run-transfer")
    for t in transfers.progress(ref).to_start:
        transfers.task_started(ref, t.task, t.round, f"run-{t.task}")
    assert sorted(transfers.withdraw(ref, "Not moving", "Sam")) == ["run-allocation", "run-documents_sent", "run-transfer"]
    assert transfer_views.status_of(ref).tasks == []


def test_a_task_whose_run_starts_after_the_withdrawal_is_refused_so_its_run_is_stopped(store_url):
    ref = raise_transfer()
    record(ref, "allocation", **ALLOCATION)
    first, *rest = transfers.progress(ref).to_start  # the run opens tasks one by one...
    assert transfers.task_started(ref, first.task, first.round, "run-first")
    assert transfers.withdraw(ref, "Not moving", "Sam") == ["run-first"]  # ...and is withdrawn meanwhile
    assert rest and [transfers.task_started(ref, t.task, t.round, f"run-{t.task}") for t in rest] == [False] * len(rest)
    assert transfer_views.status_of(ref).tasks == []


def test_the_sequential_shape_is_kept_by_nsis_raised_under_it(store_url, sequential_shape):
    ref = raise_transfer()
    assert transfer_views.shape_of(ref) == 1 and "decision" in {a.code for a in transfer_views.status_of(ref).actions}
    with pytest.raises(transfers.StepRefused):
        transfers.raise_challenge(ref, "x", "Kim SPO", "receiving_spo")

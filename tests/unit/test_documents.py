"""The documents checklist's rules that need no store: its config agrees with the form, the forms
read items as people type them, `record REF documents` finds the side's task, and a digest's rows
fold each transfer's missing items into one line naming them."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.domain import documents
from tasks.domain import steps as registry
from tasks.domain.action_forms import ACTION_FORMS, DocumentItem, DocumentsReceived, DocumentsSent
from tasks.domain.document_config import document_rules, item_measures, side_task
from tasks.domain.form import Documents, FormError
from tasks.domain.policy import get_policy
from tasks.notify.reminders import OpenAction


def test_the_action_forms_carry_what_every_step_answer_carries():
    for form in ACTION_FORMS.values():
        for name in ("recorded_by", "done_on"):
            ours, theirs = form.model_fields[name], registry.StepAnswer.model_fields[name]
            assert (ours.annotation, ours.is_required(), ours.description) == (theirs.annotation, theirs.is_required(), theirs.description)


def test_the_config_names_every_item_of_the_forms_checklist_and_nothing_else():
    assert list(document_rules().items) == list(Documents.model_fields) == [i.value for i in DocumentItem]


def test_each_side_is_an_action_of_the_action_list_whose_task_asks_its_form():
    policy = get_policy()
    for code, side in document_rules().sides.items():
        assert policy.rule(code).step is None and side.field in ACTION_FORMS[code].model_fields
        assert registry.spec_for(code, policy).form is ACTION_FORMS[code]
    assert registry.spec_for("concerns_decision", policy).form is ACTION_FORMS["concerns_decision"]
    assert "concerns_decision" in policy.completion_requires


def test_items_are_read_as_typed_on_the_command_line_with_their_other_names():
    answer = DocumentsReceived.model_validate({"recorded_by": "Admin A", "received": ["assessment, Order-Copy", "contact_log"]})
    assert answer.received == [DocumentItem.assessment, DocumentItem.order_or_licence, DocumentItem.contact_log]
    assert DocumentsSent.model_validate({"recorded_by": "Sam", "sent": "supervision_plan"}).sent == [DocumentItem.supervision_plan]
    with pytest.raises(FormError) as exc:
        registry.validate_answer("documents", {"recorded_by": "A", "received": "assesment"}, get_policy(), dt.date(2026, 12, 21))
    assert exc.value.problems[0][0] == "received.0"


def test_record_documents_sent_answers_the_sending_sides_task_and_both_at_once_is_refused():
    assert side_task("documents", {"sent": "assessment"}) == "documents_sent"
    assert side_task("documents", {"received": "assessment"}) == "documents"
    assert side_task("documents", {"done_on": "2026-12-01"}) == "documents"
    assert side_task("police_checks", {"sent": "x"}) == "police_checks"
    with pytest.raises(FormError) as exc:
        side_task("documents", {"sent": "assessment", "received": "assessment"})
    assert "--sent and --received" in str(exc.value)


def test_the_compliance_sheet_has_one_measure_per_item_with_the_inspections_share_where_it_gave_one():
    measures = {m["done"]: m["measure"] for m in item_measures()}
    assert measures["received:assessment"].endswith("(2004 inspection: 49%)")
    assert measures["received:contact_log"].endswith("(2004 inspection: 44%)")
    assert "inspection" not in measures["received:absences_and_enforcement"]
    assert all(m["by_due"] for m in item_measures()) and len(measures) == len(Documents.model_fields)


def row(nsi_id: int, code: str, title: str) -> OpenAction:
    due = dt.date(2026, 12, 24)
    return OpenAction(1, nsi_id, code, title, "admin", due, None, f"CT00000{nsi_id}", "X123456", "N", False, "case_transfer", "A", "B", "S")


def test_a_digest_folds_each_transfers_missing_items_into_its_documents_line():
    rows = [
        row(1, "documents", "Receive the documents from the transferring area"),
        row(1, "received:supervision_plan", "Receive the supervision plan"),
        row(1, "received:contact_log", "Receive the contact log"),
        row(1, "allocate", "Allocate"),
        row(2, "received:assessment", "Receive the assessment"),  # its documents line is not among the rows: kept
    ]
    folded = documents.fold(rows)
    assert [(r.nsi_id, r.title) for r in folded] == [
        (1, "Receive the documents from the transferring area: still missing the supervision plan, the contact log"),
        (1, "Allocate"),
        (2, "Receive the assessment"),
    ]

"""What a re-asked step's form says in Prefect: the policy's words, never the answer's free text."""

from flows.case_transfer import without_free_text


def test_a_stays_evidence_is_replaced_by_a_pointer_to_the_record_and_the_policys_words_stay():
    detail = "request stayed: Missing information. Sent back to N07 to put right and ask again: No AssetPlus since June"
    shown = without_free_text(detail, {"evidence": " No AssetPlus since June ", "notes": ""})
    assert "AssetPlus" not in shown
    assert shown.startswith("request stayed: Missing information. Sent back to N07") and "casetransfer status" in shown


def test_a_detail_with_no_free_text_in_it_is_shown_as_it_is():
    detail = "meeting not held (planned 2026-12-21): the case has not transferred"
    assert without_free_text(detail, {"notes": "Rescheduled by phone"}) == detail

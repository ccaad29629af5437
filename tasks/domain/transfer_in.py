"""The transfer-in summary and its documents checklist, for services whose protocol asks for one
(youth justice: 004_b0433574f6005d61.txt, Appendix A). Optional on the transfer form; the
profile's Action List asks for it when it is missing.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Attached(str, Enum):
    yes = "yes"
    no = "no"
    not_applicable = "n/a"


class TransferInDocuments(BaseModel):
    """Appendix A "Documents required": yes, no or n/a; a "no" needs a reason."""

    model_config = ConfigDict(extra="forbid")
    transfer_in_summary: Attached = Attached.no
    asset_plus: Attached = Field(Attached.no, description="AssetPlus, updated within the last month")
    transfer_questions: Attached = Field(Attached.no, description="Service-to-service transfer questions")
    referral_order_report: Attached = Field(Attached.not_applicable, description="Referral order pre-panel report or contract")
    pre_sentence_report: Attached = Attached.not_applicable
    record_of_contacts: Attached = Attached.no
    order_or_licence: Attached = Field(Attached.no, description="Copy of the court order or licence")
    custody_planning: Attached = Field(Attached.not_applicable, description="Most recent custody planning documents")
    cps_documentation: Attached = Field(Attached.no, description="CPS documentation for the current offence")
    offending_profile: Attached = Field(Attached.not_applicable, description="Previous offending profile or convictions")
    looked_after_paperwork: Attached = Attached.not_applicable
    psychological_reports: Attached = Attached.not_applicable
    special_educational_needs: Attached = Field(
        Attached.not_applicable, description="Special educational needs statement and educational psychology report"
    )

    def missing(self) -> list[str]:
        return [name for name, value in self if value is Attached.no]


class TransferInSummary(BaseModel):
    """Appendix A "Transfer in summary": what the receiving manager needs to decide (12.4)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    home_case_id: str | None = Field(None, max_length=50, description="The home service's case ID")
    parental_responsibility: str = Field(
        ..., min_length=1, max_length=500, description="Who has parental responsibility, and where"
    )
    social_worker: str | None = Field(None, max_length=500, description="Social worker's name and contact details, if any")
    looked_after_or_in_need: bool = Field(False, description="Looked after, or a child in need")
    childrens_social_care_advised: bool | None = Field(
        None, description="Has the receiving area's children's social care been told?"
    )
    iom: bool = Field(False, description="Integrated offender management")
    child_protection_plan: bool = False
    home_mappa_meeting_agreed: bool | None = Field(None, description="MAPPA cases: the home MAPPA meeting agreed the move")
    mappa_coordinator_alerted: bool | None = Field(None, description="MAPPA cases: the receiving MAPPA coordinator alerted")
    offence_details: str = Field(..., min_length=1, max_length=4000, description="Current offence, including risks to victims")
    order_summary: str = Field(..., min_length=1, max_length=4000, description="Work done, response, outstanding work")
    documents: TransferInDocuments = Field(default_factory=TransferInDocuments)
    missing_reasons: str = Field("", max_length=4000, description="Reasons for any missing paperwork")

    @model_validator(mode="after")
    def _reasons_for_missing(self) -> TransferInSummary:
        # Appendix A: "If no is indicated, please provide a reason for the missing document".
        missing = self.documents.missing()
        if missing and not self.missing_reasons:
            raise ValueError(f"missing_reasons: give the reason for each missing document: {', '.join(missing)}")
        if self.looked_after_or_in_need and self.childrens_social_care_advised is None:
            raise ValueError("childrens_social_care_advised: required when looked after or a child in need")
        return self

"""What a synthetic NSI's transfer form says: the names, streets, reasons and documents it is made
of, the words its drawn indexes stand for, and the form itself as raising would store it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FIRST_NAMES = (
    "Aaron", "Adam", "Aisha", "Alan", "Amir", "Andrew", "Ben", "Callum", "Chloe", "Connor", "Craig", "Daniel", "Darren",
    "David", "Dean", "Emma", "Gareth", "Gemma", "Hannah", "Imran", "Jack", "James", "Jamie", "Jason", "Jordan", "Karen",
    "Kieran", "Lee", "Leon", "Liam", "Marcus", "Mark", "Michael", "Mohammed", "Nathan", "Paul", "Rhys", "Ryan", "Sarah",
    "Scott", "Sean", "Shane", "Stacey", "Stephen", "Thomas", "Tyler", "Wayne", "Zoe",
)  # fmt: skip
SURNAMES = (
    "Ahmed", "Ali", "Baker", "Begum", "Brown", "Campbell", "Clarke", "Davies", "Edwards", "Evans", "Green", "Hall",
    "Harris", "Hughes", "Hussain", "Jackson", "James", "Jones", "Khan", "King", "Lewis", "Martin", "Morgan", "Morris",
    "Patel", "Phillips", "Roberts", "Robinson", "Shaw", "Smith", "Taylor", "Thomas", "Thompson", "Turner", "Walker",
    "Ward", "Watson", "White", "Williams", "Wilson", "Wood", "Wright", "Young",
)  # fmt: skip
DIVERSITY_NEEDS = (
    "None",
    "None",
    "None",
    "Dyslexia: written information to be read through",
    "Wheelchair user: ground floor appointments",
    "Interpreter needed (Polish)",
    "Religious observance: Friday prayers",
    "ADHD: short appointments",
)
REASONS = (
    "Moving in with partner",
    "Moving to live with family",
    "New employment in the area",
    "Offered social housing tenancy",
    "Approved premises placement",
    "Moving away from victim's area (licence condition)",
    "Caring responsibilities for a parent",
)
TEMPORARY_REASONS = (
    "Staying with family while a tenancy starts",
    "Short-term work contract",
    "Supporting a relative after surgery",
)
STREETS = ("High Street", "Church Road", "Station Road", "Victoria Road", "Park Avenue", "Green Lane", "Mill Lane", "Queens Road")
LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters valid in an inward code
CRN_LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"
DOCUMENTS = (
    "assessment",
    "supervision_plan",
    "order_or_licence",
    "contact_log",
    "absences_and_enforcement",
    "mappa_notes",
    "vlo_information",
    "programme_reports",
)

YOUTH_IDENTITY = {"Female": "Girl or young woman", "Male": "Boy or young man"}


@dataclass(frozen=True)
class Labels:
    """What the index arrays index into."""

    rosh: list[str]
    gender: list[str]
    sentence: list[str]
    accommodation: list[str]
    teams: list[str]
    pdus: list[str]
    youth: bool = False  # the profile asks for SaW and gender identity (youth justice)


def person(k: int) -> str:
    return f"{FIRST_NAMES[k % len(FIRST_NAMES)]} {SURNAMES[k // len(FIRST_NAMES) % len(SURNAMES)]}"


def _postcode(k: int) -> str:
    area = "ABCDEFGHKLMNPRSTW"[k % 17] + "ABDEFGHKLMNPRSTWY"[k // 17 % 17]
    district = k // 289 % 20 + 1
    inward = f"{k // 5780 % 10}{LETTERS[k // 57800 % 20]}{LETTERS[k // 1156000 % 20]}"
    return f"{area}{district} {inward}"


def _iso(d: np.datetime64) -> str | None:
    return None if np.isnat(d) else str(d.astype("datetime64[D]"))


def form_dict(c: dict[str, np.ndarray], i: int, labels: Labels) -> dict[str, Any]:
    """The transfer form row i was raised with, as TransferForm.model_dump(mode='json') gives it."""
    tm = bool(c["tm"][i])
    raised = c["raised"][i]
    people = c["people"][:, i]
    form: dict[str, Any] = {
        "nsi_type": "temporary_move" if tm else "case_transfer",
        "crn": f"{CRN_LETTERS[c['crn_letter'][i]]}{c['crn_number'][i]:06d}",
        "name": f"{FIRST_NAMES[c['first'][i]]} {SURNAMES[c['last'][i]]}",
        "date_of_birth": _iso(raised - c["age_days"][i]),
        "gender": labels.gender[c["gender"][i]],
        "diversity_needs": DIVERSITY_NEEDS[c["diversity"][i]] if c["diversity"][i] >= 0 else None,
        "lao": bool(c["lao"][i]),
        "sentence_type": labels.sentence[c["sentence"][i]],
        "sentence_end_date": _iso(raised + c["sentence_days"][i]),
        "current_address": f"{1 + c['postcodes'][0, i] % 180} {STREETS[c['postcodes'][0, i] % len(STREETS)]}",
        "current_postcode": _postcode(int(c["postcodes"][0, i])),
        "proposed_address": f"{1 + c['postcodes'][1, i] % 180} {STREETS[c['postcodes'][1, i] % len(STREETS)]}",
        "proposed_postcode": _postcode(int(c["postcodes"][1, i])),
        "household": "",
        "accommodation_type": labels.accommodation[c["accommodation"][i]],
        "reason_for_move": TEMPORARY_REASONS[c["reason"][i] % len(TEMPORARY_REASONS)] if tm else REASONS[c["reason"][i]],
        "move_date": _iso(c["move"][i]),
        "rosh": labels.rosh[c["rosh"][i]],
        "mappa_category": int(c["mappa_category"][i]) or None,
        "mappa_level": int(c["mappa_level"][i]) or None,
        "last_oasys_date": _iso(raised - c["oasys_days"][i]),
        "restrictive_conditions": None,
        "victim_contact": bool(c["victim_contact"][i]),
        "safeguarding_concerns": bool(c["safeguarding"][i]),
        "transferring_practitioner": person(int(people[0])),
        "transferring_team_code": labels.teams[c["t_team"][i]],
        "transferring_spo": person(int(people[1])),
        "receiving_pdu_code": labels.pdus[c["r_pdu"][i]],
        "documents": {d: bool(c["docs"][k, i]) for k, d in enumerate(DOCUMENTS)},
        "raised_by": person(int(people[0])),
        "raised_on": _iso(raised),
        "received_on": _iso(c["received"][i]),
        "temporary_reason": TEMPORARY_REASONS[c["reason"][i] % len(TEMPORARY_REASONS)] if tm else None,
        "expected_return_date": _iso(c["tm_return"][i]) if tm else None,
        "released_from_custody": False,
        "post_release_accommodation_temporary": False,
    }
    if labels.youth:
        # SaW follows the RoSH drawn (the inspection's profile has no SaW figures of its own).
        form["saw_level"] = form["rosh"]
        form["gender_identity"] = YOUTH_IDENTITY.get(form["gender"], "Other")
    return form

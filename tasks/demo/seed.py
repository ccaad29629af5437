"""Synthetic NSIs for demos and benchmarks, written straight into the store.

No flow runs: every row goes in through SQLAlchemy core `insert()` executemany, in chunks,
inside one transaction (a failure leaves nothing half-seeded). The numbers that shape the data
live in config/seed.yaml; the Action List comes from config/timescales.yaml through
tasks.domain.actions (`applies`, `due_date`), so seeded due dates are the ones a real flow would set.

Deterministic: every random draw is made up front from one numpy Generator, so the same
(n, seed, as_of) always gives the same rows. References are CT/TM + the NSI's real id, exactly
like tasks.domain.transfers.register_nsi, so they can never collide with NSIs raised for real.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, Table, bindparam, insert, select, text, update

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.config_files import read_yaml
from tasks.domain import steps as registry
from tasks.domain.actions import Clocks, Facts, plan_actions, transfer_due
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.domain.steps import SEQUENTIAL_STEPS, TEMPORARY_MOVE_STEPS
from tasks.domain.temporary_moves import CONVERTING, OUTCOMES, SUPPORTING
from tasks.domain.transfer import close_nsi, finish_actions, unplanned
from tasks.domain.transfers import REFERENCE_PREFIX, nsi_columns, raised_detail, waiting_status
from tasks.places.estate import load_estate
from tasks.places.placement import Placement, check_placement
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.session import get_engine

# Synthetic NSIs follow the sequential shape (1), step after step, as the transfers still open
# from before the concurrent shape do: the step registry's order (Prefect-free).
STEPS: tuple[str, ...] = tuple(SEQUENTIAL_STEPS)
# The temporary-move flow's steps and its supporting status.
SUPPORT_STEP, OUTCOME_STEP = TEMPORARY_MOVE_STEPS
# The steps whose actions their recording finishes; the others people mark done around their due date.
RECORDED_STEPS = frozenset((*STEPS, SUPPORT_STEP, OUTCOME_STEP))
SHAPE = 1  # the sequential shape (above)
NEVER = -(10**6)  # an action people never mark done
CHUNK = 5000  # NSIs per executemany batch: bounds memory, keeps SQLite's bind-variable count low

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
class SeedExists(ValueError):
    """The store already holds NSIs from this seed."""


@lru_cache(maxsize=2)
def load_seed_profile(path: Path | None = None) -> dict[str, Any]:
    path = path or get_settings().config_dir / "seed.yaml"
    return read_yaml(path)


def _pick(rng: np.random.Generator, shares: dict[Any, float], n: int) -> tuple[list[Any], np.ndarray]:
    """Keys and an index array drawn with the given shares (normalised)."""
    keys = list(shares)
    p = np.array([float(shares[k]) for k in keys])
    return keys, rng.choice(len(keys), size=n, p=p / p.sum())


def _dates(a: np.ndarray) -> list[dt.date | None]:
    return a.astype("datetime64[D]").astype(object).tolist()


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


@dataclass
class Synthetic:
    """Column arrays for n NSIs (index i is the NSI with request key seed-S-i)."""

    n: int
    cols: dict[str, np.ndarray]
    step_dates: np.ndarray  # (len(STEPS), n) datetime64[D]
    step_recorded: np.ndarray  # (len(STEPS), n) bool
    rule_index: dict[str, int]  # Action List code -> row of action_delay
    action_delay: np.ndarray  # (rules, n) working days after due that the action is done (early: < 0), or NEVER
    labels: Labels


def generate(
    n: int, seed: int, as_of: dt.date, policy: Policy | None = None, calendar: WorkingDayCalendar | None = None
) -> Synthetic:
    """All the random draws and the derived lifecycle, vectorised. Writes nothing."""
    cfg = load_seed_profile()
    settings = get_settings()
    policy = policy or get_policy(settings.profile)
    calendar = calendar or get_calendar(settings.calendar)
    estate = load_estate()
    rng = np.random.default_rng(seed)
    today = np.datetime64(as_of, "D")

    pdus = sorted(p.code for p in estate.geographic_pdus())
    pdu_region = np.array([estate.pdus[p].region_code for p in pdus])
    teams = sorted(t.code for t in estate.teams.values() if t.pdu_code in estate.pdus and estate.pdus[t.pdu_code].geographic)
    team_pdu = np.array([pdus.index(estate.teams[t].pdu_code) for t in teams])
    teams_of_pdu = [np.flatnonzero(team_pdu == i) for i in range(len(pdus))]

    c: dict[str, np.ndarray] = {}
    # Where: transferring team (and so PDU, region), receiving PDU always a different PDU.
    t_team = rng.integers(0, len(teams), n)
    t_pdu = team_pdu[t_team]
    same_region = rng.random(n) < cfg["same_region_share"]
    pick = rng.random(n)
    r_pdu = np.empty(n, dtype=np.int64)
    for i in range(len(pdus)):
        rows = np.flatnonzero(t_pdu == i)
        if rows.size == 0:
            continue
        same = np.flatnonzero((pdu_region == pdu_region[i]) & (np.arange(len(pdus)) != i))
        other = np.flatnonzero(pdu_region != pdu_region[i])
        use_same = same_region[rows] & (same.size > 0)
        cand_same = same if same.size else other
        r_pdu[rows] = np.where(
            use_same,
            cand_same[(pick[rows] * cand_same.size).astype(np.int64) % cand_same.size],
            other[(pick[rows] * other.size).astype(np.int64) % other.size],
        )
    c["t_team"], c["t_pdu"], c["r_pdu"] = t_team, t_pdu, r_pdu
    r_team_pick = rng.random(n)
    c["r_team"] = np.array(
        [
            teams_of_pdu[p][int(u * len(teams_of_pdu[p]))] if len(teams_of_pdu[p]) else -1
            for p, u in zip(r_pdu, r_team_pick, strict=True)
        ]
    )
    distance = np.exp(np.log(cfg["distance_km_median"]) + cfg["distance_km_sigma"] * rng.standard_normal(n))
    c["distance"] = np.round(np.where(pdu_region[r_pdu] == pdu_region[t_pdu], distance * 0.5, distance), 1)

    # Who: the inspection's case profile.
    c["tm"] = rng.random(n) < cfg["temporary_move_share"]
    rosh_keys, c["rosh"] = _pick(rng, cfg["rosh"], n)
    mappa = rng.random(n) < cfg["mappa_share"]
    cat_keys, cat = _pick(rng, cfg["mappa_category"], n)
    lvl_keys, lvl = _pick(rng, cfg["mappa_level"], n)
    c["mappa_category"] = np.where(mappa, np.array(cat_keys)[cat], 0)
    c["mappa_level"] = np.where(mappa, np.array(lvl_keys)[lvl], 0)
    c["lao"] = rng.random(n) < cfg["lao_share"]
    c["diversity"] = np.where(rng.random(n) < cfg["diversity_missing_share"], -1, rng.integers(0, len(DIVERSITY_NEEDS), n))
    c["victim_contact"] = rng.random(n) < cfg["victim_contact_share"]
    c["safeguarding"] = rng.random(n) < cfg["safeguarding_share"]
    gender_keys, c["gender"] = _pick(rng, cfg["gender"], n)
    sentence_keys, c["sentence"] = _pick(rng, cfg["sentence_type"], n)
    accommodation_keys, c["accommodation"] = _pick(rng, cfg["accommodation_type"], n)
    c["first"], c["last"] = rng.integers(0, len(FIRST_NAMES), n), rng.integers(0, len(SURNAMES), n)
    c["crn_letter"], c["crn_number"] = rng.integers(0, len(CRN_LETTERS), n), rng.integers(0, 1_000_000, n)
    c["people"] = rng.integers(0, len(FIRST_NAMES) * len(SURNAMES), (4, n))  # transferring PP, SPO, receiving PP, receiving SPO
    # Age on the day raised inside the profile's range (parse_form refuses others): at least min_age
    # years of 366 days, under max_age + 1 years of 365 days, and under 70 as before.
    c["age_days"] = rng.integers(policy.min_age * 366, min(policy.max_age + 1, 70) * 365, n)
    c["sentence_days"] = rng.integers(180, 3 * 365, n)
    c["oasys_days"] = rng.integers(0, 180, n)
    c["postcodes"] = rng.integers(0, 10_000_000, (2, n))
    c["reason"] = rng.integers(0, len(REASONS), n)
    c["docs"] = rng.random((len(DOCUMENTS), n)) < 0.8

    # When: raised on a working day within the window before the as-of date.
    start = np.datetime64(as_of - relativedelta(months=cfg["window_months"]), "D")
    days = np.arange(start + 1, today + 1)
    workdays = days[calendar.add_working_days_many(days, 0) == days]
    raised = workdays[rng.integers(0, workdays.size, n)]
    lag_keys, lag = _pick(rng, cfg["received_after_raised_working_days"], n)
    received = np.minimum(calendar.add_working_days_many(raised, np.array(lag_keys)[lag]), today)
    move_lag = np.where(c["tm"], rng.integers(0, 4, n), rng.integers(0, cfg["move_after_received_days_max"] + 1, n))
    move = received + move_lag.astype("timedelta64[D]")
    c["raised"], c["received"], c["move"] = raised, received, move

    # Case transfers: each waiting step in the flow's order, recorded when its day has come.
    shape = float(cfg["step_gamma_shape"])
    incs = np.stack([np.rint(rng.gamma(shape, cfg["step_working_days"][s] / shape, n)).astype(np.int64) for s in STEPS])
    slow = rng.choice(len(pdus), size=min(cfg["slow_police_pdus"], len(pdus)), replace=False)
    c["slow_police_pdus"] = np.array(sorted(pdus[i] for i in slow))
    incs[STEPS.index("police_checks")] += np.where(np.isin(r_pdu, slow), cfg["slow_police_extra_working_days"], 0)
    stuck = rng.random(n) < cfg["stuck_share"]
    stuck_step = rng.integers(0, len(STEPS), n)
    lo, hi = cfg["stuck_extra_working_days"]
    stuck_by = rng.integers(lo, hi + 1, n)
    incs[stuck_step[stuck], np.flatnonzero(stuck)] += stuck_by[stuck]
    step_dates = calendar.add_working_days_many(np.broadcast_to(received, incs.shape), np.cumsum(incs, axis=0))

    refused = rng.random(n) < cfg["refused_share"]
    withdrawn = (rng.random(n) < cfg["withdrawn_share"]) & ~refused
    withdrawn_on = calendar.add_working_days_many(received, rng.integers(0, cfg["withdrawn_within_working_days"] + 1, n))
    cut = np.where(withdrawn, withdrawn_on, np.datetime64("9999-12-31"))
    recorded = (step_dates <= today) & (step_dates < cut) & ~c["tm"]
    decision = STEPS.index("decision")
    recorded[decision + 1 :] &= ~(refused & recorded[decision])
    done_completion = recorded[STEPS.index("completion")]
    is_refused = refused & recorded[decision]
    is_withdrawn = withdrawn & (withdrawn_on <= today) & ~done_completion & ~c["tm"]

    status = np.full(n, "", dtype=object)
    closed = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    waiting = np.full(n, None, dtype=object)
    n_recorded = recorded.sum(axis=0)
    for k, s in enumerate(STEPS):
        at = ~c["tm"] & (n_recorded == k)
        status[at] = f"awaiting_{s}"
        waiting[at] = s
    status[~c["tm"] & (n_recorded == 0) & (raised == today)] = "raised"
    waiting[status == "raised"] = None
    for mask, name, on in (
        (done_completion, "completed", step_dates[STEPS.index("completion")]),
        (is_refused, "refused", step_dates[decision]),
        (is_withdrawn, "withdrawn", withdrawn_on),
    ):
        status[mask], closed[mask], waiting[mask] = name, on[mask], None

    # Temporary moves: caretaking that ends with a return, a conversion to a transfer, or an end.
    tmc = cfg["temporary_move"]
    out_keys, outcome = _pick(rng, tmc["outcomes"], n)
    length = np.rint(np.exp(np.log(tmc["length_days_median"]) + tmc["length_days_sigma"] * rng.standard_normal(n))).astype(
        np.int64
    )
    clo, chi = tmc["converted_after_days"]
    length = np.where(np.array(out_keys)[outcome] == "converted", rng.integers(clo, chi + 1, n), np.maximum(length, 7))
    tm_end = move + length.astype("timedelta64[D]")
    tm_closed = c["tm"] & (tm_end <= today)
    status[tm_closed] = np.array(out_keys, dtype=object)[outcome[tm_closed]]
    closed[tm_closed] = tm_end[tm_closed]
    c["tm_return"] = move + (length + rng.integers(-14, 15, n)).clip(7).astype("timedelta64[D]")
    # The temporary-move flow's steps, where the policy has them (actions with a step for
    # temporary moves): a support contact allocated soon after receipt, and the outcome on the
    # day the move ends. Without them an open move simply stays "raised".
    tm_steps = {r.step for r in policy.actions if "temporary_move" in r.nsi_types and r.step}
    support_on = calendar.add_working_days_many(
        received, np.rint(rng.gamma(shape, tmc["support_working_days"] / shape, n)).astype(np.int64)
    )
    tm_recorded = {
        SUPPORT_STEP: c["tm"] & (SUPPORT_STEP in tm_steps) & (support_on <= today) & (np.isnat(closed) | (support_on <= closed)),
        OUTCOME_STEP: tm_closed & (OUTCOME_STEP in tm_steps),
    }
    tm_dates = {SUPPORT_STEP: support_on, OUTCOME_STEP: np.where(tm_closed, tm_end, np.datetime64("NaT"))}
    tm_open = c["tm"] & ~tm_closed
    if tm_steps:
        supported = tm_open & tm_recorded[SUPPORT_STEP]
        status[tm_open] = f"awaiting_{SUPPORT_STEP}"
        waiting[tm_open] = SUPPORT_STEP
        status[supported] = SUPPORTING
        waiting[supported] = OUTCOME_STEP
    else:
        status[tm_open] = "raised"
    c["status"], c["closed"], c["waiting"] = status, closed, waiting
    c["tm_recorded"], c["tm_dates"] = tm_recorded, tm_dates

    labels = Labels(rosh_keys, gender_keys, sentence_keys, accommodation_keys, teams, pdus, bool(policy.required_form_fields))
    c["due"] = np.empty(n, dtype="datetime64[D]")
    for is_tm, kind in ((False, NsiType.case_transfer), (True, NsiType.temporary_move)):
        rows = c["tm"] == is_tm
        if rows.any():
            uniq, inv = np.unique(raised[rows], return_inverse=True)
            c["due"][rows] = np.array([transfer_due(d, policy, calendar, kind) for d in _dates(uniq)], dtype="datetime64[D]")[
                inv.reshape(-1)
            ]

    # How long after its due date people mark each action done (some late, a few never), for the
    # actions no step finishes. Which actions an NSI has, and when they are due, is the domain's
    # (plan_actions, when the NSI is written).
    rules = policy.actions
    delay_cfg = cfg["other_action_delay_working_days"]
    bands = [delay_cfg[b] for b in ("early", "late", "very_late")]
    shares = [b[2] for b in bands]
    band = rng.choice(len(bands) + 1, size=(len(rules), n), p=[*shares, max(0.0, 1 - sum(shares))])
    offs = rng.random((len(rules), n))
    delay = np.full((len(rules), n), NEVER, dtype=np.int64)
    for b, (lo_b, hi_b, _) in enumerate(bands):
        delay = np.where(band == b, lo_b + (offs * (hi_b - lo_b + 1)).astype(np.int64), delay)
    return Synthetic(n, c, step_dates, recorded, {r.code: k for k, r in enumerate(rules)}, delay, labels)


def _person(k: int) -> str:
    return f"{FIRST_NAMES[k % len(FIRST_NAMES)]} {SURNAMES[k // len(FIRST_NAMES) % len(SURNAMES)]}"


def _postcode(k: int) -> str:
    area = "ABCDEFGHKLMNPRSTW"[k % 17] + "ABDEFGHKLMNPRSTWY"[k // 17 % 17]
    district = k // 289 % 20 + 1
    inward = f"{k // 5780 % 10}{LETTERS[k // 57800 % 20]}{LETTERS[k // 1156000 % 20]}"
    return f"{area}{district} {inward}"


def _iso(d: np.datetime64) -> str | None:
    return None if np.isnat(d) else str(d.astype("datetime64[D]"))


YOUTH_IDENTITY = {"Female": "Girl or young woman", "Male": "Boy or young man"}


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
        "transferring_practitioner": _person(int(people[0])),
        "transferring_team_code": labels.teams[c["t_team"][i]],
        "transferring_spo": _person(int(people[1])),
        "receiving_pdu_code": labels.pdus[c["r_pdu"][i]],
        "documents": {d: bool(c["docs"][k, i]) for k, d in enumerate(DOCUMENTS)},
        "raised_by": _person(int(people[0])),
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


def _at(d: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, hour, 0, tzinfo=dt.UTC)


def _answer(
    step: str, on: dt.date, i: int, c: dict[str, np.ndarray], labels: Labels, situation: registry.Situation, policy: Policy
) -> tuple[dict[str, Any], registry.Effect]:
    """The step's answer, built and dumped through its form in the step registry as a flow would,
    and what the registry says recording it does."""
    spo, pp = _person(int(c["people"][3, i])), _person(int(c["people"][2, i]))
    fields: dict[str, Any]
    if step == SUPPORT_STEP:
        fields = {"recorded_by": spo, "support_contact": pp, "team_code": labels.teams[c["r_team"][i]]}
    elif step == OUTCOME_STEP:
        fields = {"recorded_by": _person(int(c["people"][0, i])), "outcome": str(c["status"][i]), "on": on}
    elif step == "allocation" and policy.allocation is not None:
        # A senior case manager identifying as female meets 4.1 and 2.2 for every case.
        rules = policy.allocation
        manager = next(m for m in rules.staff if m.band in rules.senior_bands and m.gender == "female")
        fields = {"recorded_by": spo, "case_manager": manager.id, "team_code": labels.teams[c["r_team"][i]]}
    elif step == "allocation":
        fields = {"recorded_by": spo, "practitioner": pp, "team_code": labels.teams[c["r_team"][i]]}
    elif step == "address_assessment":
        home = c["postcodes"][1, i] % 3 or policy.home_visit_required
        fields = {"recorded_by": pp, "method": "home_visit" if home else "desktop", "suitable": True}
    elif step in ("police_checks", "safeguarding_checks"):
        fields = {"recorded_by": "Case admin", "returned_on": on}
    elif step == "handover":
        fields = {"recorded_by": _person(int(c["people"][0, i])), "held_on": on}
    elif step == "decision":
        fields = {"recorded_by": spo, "outcome": "accept"}
        if c["status"][i] == "refused":
            fields = {
                "recorded_by": spo,
                "outcome": "refuse",
                "reasons": ["Risk of harm would increase and could not be managed at the new address"],
                "evidence": "Police checks show the proposed address is close to the victim's home",
            }
    else:
        fields = {"recorded_by": spo, "responsible_officer": pp, "completed_on": on}
    answer = registry.spec_for(step, policy).form.model_validate(fields).model_dump(mode="json")
    return answer, registry.effect_of(step, answer, situation, policy, on)


def _chunks(n: int) -> Iterator[range]:
    for lo in range(0, n, CHUNK):
        yield range(lo, min(n, lo + CHUNK))


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Plain executemany: SQLite runs it as a C loop; psycopg pipelines it. (SQLAlchemy's
    multi-row VALUES batches were slower on psycopg: it re-parses each 1000-row statement.)"""
    conn.execute(insert(table), rows)


class _Remembered(WorkingDayCalendar):
    """The calendar, remembering each (start, n) it has counted: 100k NSIs share a few hundred
    start days, and plan_actions counts one day at a time."""

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - bounded: it outlives the seeding (keyed by the calendar)
    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        return super().add_working_days(start, n)


@dataclass
class _ActionDraft:
    """An Action row before its NSI has an id; `usual_done` is when people mark it done if no step
    finishes it (None: never)."""

    code: str
    title: str
    owner_role: str
    due_on: dt.date
    usual_done: dt.date | None
    status: str = "open"
    done_on: dt.date | None = None


class _NsiDraft(SimpleNamespace):
    """An NSI row before it has an id, with the attributes the store's rules touch
    (tasks/domain/transfer.py: finish_actions, close_nsi): its columns and its actions."""

    actions: list[_ActionDraft]


def _plan(
    draft: _NsiDraft, facts: Facts, clocks: Clocks, syn: Synthetic, i: int, calendar: WorkingDayCalendar, policy: Policy,
    clock: str | None = None,
) -> None:  # fmt: skip
    """Add the actions plan_actions gives (those of one clock, when named) as register_nsi and
    apply_step do, each with the day people would mark it done."""
    planned = plan_actions(facts, clocks, policy, calendar, draft.shape_version)
    if clock is not None:
        planned = [p for p in planned if policy.rule(p.code).clock == clock]
    for p in unplanned(planned, {a.code for a in draft.actions}):
        delay = int(syn.action_delay[syn.rule_index[p.code], i])
        usual = None
        if p.step not in RECORDED_STEPS and delay != NEVER:
            start = clocks.start(policy.rule(p.code).clock)
            assert start is not None  # plan_actions plans only started clocks
            usual = max(calendar.add_working_days(p.due_on, delay), start)
        draft.actions.append(_ActionDraft(p.code, p.title, p.owner_role, p.due_on, usual))


def _done_by(draft: _NsiDraft, on: dt.date, today: dt.date) -> None:
    """The actions people had marked done by `on` (and by today)."""
    for a in draft.actions:
        if a.status == "open" and a.usual_done is not None and a.usual_done <= min(on, today):
            a.status, a.done_on = "done", a.usual_done


def _write_chunk(
    conn: Connection, syn: Synthetic, rows: range, seed: int, policy: Policy, calendar: WorkingDayCalendar, today: dt.date
) -> None:
    """Each NSI is raised and taken through its recorded steps by the domain's own functions
    (new_nsi's columns, plan_actions, the step registry's effects, the store's closing rules), in
    memory; then each table goes in with one executemany."""
    c = syn.cols
    labels = syn.labels
    estate = load_estate()
    sl = slice(rows.start, rows.stop)
    raised, received, move = _dates(c["raised"][sl]), _dates(c["received"][sl]), _dates(c["move"][sl])
    closed, due = _dates(c["closed"][sl]), _dates(c["due"][sl])
    step_dates = [_dates(syn.step_dates[k, sl]) for k in range(len(STEPS))]
    drafts: list[_NsiDraft] = []
    steps: list[tuple[int, dict[str, Any]]] = []  # (row in chunk, step record without its nsi_id)
    history: list[tuple[int, dict[str, Any]]] = []
    for j, i in enumerate(rows):
        form = TransferForm.model_validate(form_dict(c, i, labels))
        placement = Placement(labels.pdus[c["r_pdu"][i]], float(c["distance"][i]))
        draft = _NsiDraft(
            **nsi_columns(
                form, f"seed-{seed}-{i}", policy, SHAPE, raised=raised[j], received=received[j], move=move[j], due=due[j],
                placed=check_placement(form, placement, policy), placement=placement, flow_run_id=None,
                parent_reference=None, created_at=_at(raised[j], 9),
            ),
            allocated_on=None, closed_on=None, receiving_team_code=None, receiving_practitioner=None, waiting_step=None,
            actions=[],
        )  # fmt: skip
        drafts.append(draft)
        clocks = Clocks(raised=raised[j], received=received[j], move=move[j])
        facts = Facts(form, nearby_pdu=placement.distance_km is not None and placement.distance_km < policy.nearby_pdu_km)
        _plan(draft, facts, clocks, syn, i, calendar, policy)
        history.append((j, {
            "key": "raised",
            "event": "raised",
            "detail": raised_detail(draft.nsi_type, estate.pdus[draft.receiving_pdu_code].name),
            "actor": form.raised_by,
            "at": _at(raised[j], 9),
            "flow_run_id": None,
        }))  # fmt: skip
        situation = registry.Situation(
            reference=draft.request_key,  # the id-based reference is not known yet; no effect words it
            status="raised",
            concurrent=False,  # synthetic NSIs follow the sequential shape (above)
            receiving_pdu_code=draft.receiving_pdu_code,
            transferring_team_code=draft.transferring_team_code,
            transferring_pdu_code=draft.transferring_pdu_code,
            transferring_practitioner=draft.transferring_practitioner,
        )
        # Recorded in the flow's order: the first step not recorded ends the run of them.
        upto = next((k for k in range(len(STEPS)) if not syn.step_recorded[k, i]), len(STEPS))
        recorded = [(step_dates[k][j], STEPS[k], 10 + k) for k in range(upto)]
        recorded += [
            (_dates(c["tm_dates"][step][i : i + 1])[0], step, 11) for step in (SUPPORT_STEP, OUTCOME_STEP) if c["tm_recorded"][step][i]
        ]
        for on, step, hour in recorded:
            answer, effect = _answer(step, on, i, c, labels, situation, policy)
            if effect.closes not in (None, "completed"):
                _done_by(draft, effect.on, today)
            # What apply_step does with the effect (the seeder's answers are all final).
            for name, value in effect.sets.items():
                setattr(draft, name, value)
            if effect.plans == "allocation":
                _plan(draft, replace(facts, allocation=effect.answer), replace(clocks, reallocation=effect.on), syn, i, calendar, policy)
            finish_actions(cast(Nsi, draft), list(effect.finishes), effect.on)
            if effect.closes is not None:
                close_nsi(cast(Nsi, draft), effect.closes, effect.on)
            else:
                draft.status = effect.status or draft.status
                draft.waiting_step = None
            if effect.plans == "returned":
                _plan(draft, facts, replace(clocks, returned=effect.on), syn, i, calendar, policy, clock="returned")
            at = _at(on, hour)
            steps.append((j, {
                "step": step, "answer": effect.answer, "recorded_by": answer["recorded_by"], "recorded_at": at,
                "flow_run_id": None, "done_on": effect.on,
            }))  # fmt: skip
            history.append((j, {
                "key": f"step:{step}", "event": step, "detail": effect.detail, "actor": answer["recorded_by"], "at": at,
                "flow_run_id": None,
            }))  # fmt: skip
        if draft.status == CONVERTING:
            # conversion.finish closes the move; the Case Transfer it becomes is not seeded.
            _done_by(draft, closed[j], today)
            close_nsi(cast(Nsi, draft), OUTCOMES["converted"], closed[j])
        status = c["status"][i]
        if status == "withdrawn" or (status in ("returned", "converted", "ended") and not c["tm_recorded"][OUTCOME_STEP][i]):
            # Closed outside any step: withdrawn, or a temporary move's end without its flow's outcome step.
            _done_by(draft, closed[j], today)
            close_nsi(cast(Nsi, draft), status, closed[j])
            detail = "moved again before the transfer finished" if status == "withdrawn" else f"temporary move {status}"
            history.append((j, {
                "key": status, "event": status, "detail": detail, "actor": form.transferring_practitioner,
                "at": _at(closed[j], 16), "flow_run_id": None,
            }))  # fmt: skip
        elif draft.closed_on is None and c["waiting"][i] is not None:
            # Where the flow has got to: waiting for its next step, as mark_waiting leaves it.
            draft.waiting_step = c["waiting"][i]
            draft.status = waiting_status(draft.waiting_step, SUPPORTING if draft.waiting_step == OUTCOME_STEP else None)
        _done_by(draft, today, today)
        draft.updated_at = _at(draft.closed_on or raised[j], 17)

    nsi_rows = [{k: v for k, v in vars(d).items() if k != "actions"} for d in drafts]
    nsi = Nsi.__table__
    if conn.dialect.name == "postgresql":
        # Ids from the table's own sequence, so the references go in with the rows (no update).
        seq = conn.scalar(text("SELECT pg_get_serial_sequence('nsi', 'id')"))
        ids = sorted(conn.scalars(text("SELECT nextval(:seq) FROM generate_series(1, :k)"), {"seq": seq, "k": len(nsi_rows)}))
        for k, r in zip(ids, nsi_rows, strict=True):
            r["id"], r["reference"] = k, f"{REFERENCE_PREFIX[NsiType(r['nsi_type'])]}{k:06d}"
        _insert_many(conn, nsi, nsi_rows)
    else:
        ids = conn.execute(insert(nsi).returning(nsi.c.id, sort_by_parameter_order=True), nsi_rows).scalars().all()
        # updated_at is given again: the model's onupdate would stamp the wall clock (not deterministic).
        conn.execute(
            update(nsi).where(nsi.c.id == bindparam("b_id")).values(reference=bindparam("b_ref"), updated_at=bindparam("b_upd")),
            [
                {"b_id": k, "b_ref": f"{REFERENCE_PREFIX[NsiType(r['nsi_type'])]}{k:06d}", "b_upd": r["updated_at"]}
                for k, r in zip(ids, nsi_rows, strict=True)
            ],
        )
    # Actions in the order they were planned, as register_nsi and apply_step add them.
    _insert_many(
        conn,
        Action.__table__,
        [
            {
                "nsi_id": ids[j], "code": a.code, "title": a.title, "owner_role": a.owner_role, "due_on": a.due_on,
                "done_on": a.done_on, "status": a.status, "escalated_on": None,
            }
            for j, d in enumerate(drafts)
            for a in d.actions
        ],
    )  # fmt: skip
    if steps:
        _insert_many(conn, StepRecord.__table__, [{"nsi_id": ids[j], **r} for j, r in steps])
    _insert_many(conn, HistoryEntry.__table__, [{"nsi_id": ids[j], **r} for j, r in history])


def seed(n: int, seed: int = 0, as_of: dt.date | None = None, url: str | None = None, progress: Any = None) -> int:
    """Write n synthetic NSIs with their actions, step records and histories; returns n.

    Raises SeedExists when this seed was used on the store before (request keys are unique).
    `progress`, when given, is called with the number of NSIs written after each chunk.
    """
    if n < 0:
        raise ValueError("transfers: must be zero or more")
    settings = get_settings()
    as_of = as_of or settings.current_date()
    policy = get_policy(settings.profile)
    cal = get_calendar(settings.calendar)
    calendar = _Remembered(cal.name, cal.closures)
    syn = generate(n, seed, as_of, policy, calendar)
    engine = get_engine(url or settings.effective_database_url)
    nsi = Nsi.__table__
    with engine.begin() as conn:
        if conn.scalar(select(nsi.c.id).where(nsi.c.request_key == f"seed-{seed}-0")) is not None:
            raise SeedExists(f"seed: the store already holds NSIs from seed {seed}; use another --seed")
        for rows in _chunks(n):
            _write_chunk(conn, syn, rows, seed, policy, calendar, as_of)
            if progress is not None:
                progress(rows.stop)
    return n

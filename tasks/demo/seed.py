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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, Table, bindparam, insert, select, text, update

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.config_files import read_yaml
from tasks.domain import steps as registry
from tasks.domain.actions import Facts, applies, due_date, transfer_due
from tasks.domain.form import NsiType, TransferForm
from tasks.domain.policy import Policy, get_policy
from tasks.domain.steps import SEQUENTIAL_STEPS, TEMPORARY_MOVE_STEPS
from tasks.domain.transfers import REFERENCE_PREFIX, raised_detail
from tasks.places.estate import load_estate
from tasks.settings import get_settings
from tasks.store.models import Action, HistoryEntry, Nsi, StepRecord
from tasks.store.session import get_engine

# Synthetic NSIs follow the sequential shape (1), step after step, as the transfers still open
# from before the concurrent shape do: the step registry's order (Prefect-free).
STEPS: tuple[str, ...] = tuple(SEQUENTIAL_STEPS)
# The temporary-move flow's steps and its supporting status.
SUPPORT_STEP, OUTCOME_STEP = TEMPORARY_MOVE_STEPS
try:
    from tasks.domain.temporary_moves import SUPPORTING
except ImportError:  # before temporary moves had a flow of their own
    SUPPORTING = "supporting"
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
    action_rules: list[Any]
    action_due: np.ndarray  # (rules, n) datetime64[D], NaT where the rule does not apply
    action_done: np.ndarray  # (rules, n) datetime64[D], NaT where not done
    action_status: np.ndarray  # (rules, n) object: open | done | cancelled | None
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
    # Allocation (a transfer) or the support contact (a temporary move) sets allocated_on.
    c["allocated"] = np.where(recorded[0], step_dates[0], np.where(tm_recorded[SUPPORT_STEP], support_on, np.datetime64("NaT")))

    # The Action List: conditions evaluated once per distinct combination of the facts they read.
    facts_key = np.stack(
        [c["tm"], c["rosh"], c["mappa_category"], c["mappa_level"], c["victim_contact"], c["safeguarding"], c["sentence"],
         c["accommodation"], c["gender"], c["lao"], c["diversity"] >= 0, c["distance"] < policy.nearby_pdu_km]
    ).astype(np.int64).T  # fmt: skip
    combos, group = np.unique(facts_key, axis=0, return_inverse=True)
    group = group.reshape(-1)
    first_row = np.zeros(len(combos), dtype=np.int64)
    first_row[group[::-1]] = np.arange(n)[::-1]
    labels = Labels(rosh_keys, gender_keys, sentence_keys, accommodation_keys, teams, pdus, bool(policy.required_form_fields))
    rules = policy.actions
    applies_by_group = np.zeros((len(combos), len(rules)), dtype=bool)
    for g, row in enumerate(first_row):
        form = TransferForm.model_validate(form_dict(c, int(row), labels))
        facts = Facts(form, nearby_pdu=bool(c["distance"][row] < policy.nearby_pdu_km))
        applies_by_group[g] = [applies(rule, facts) for rule in rules]
    clocks = {
        "raised": raised,
        "received": received,
        "move": move,
        "reallocation": np.where(c["tm"], np.datetime64("NaT"), c["allocated"]),
        # A temporary move's return (its outcome step) starts the case review clock.
        "returned": np.where(status == "returned", closed, np.datetime64("NaT")),
    }
    due = np.full((len(rules), n), np.datetime64("NaT"), dtype="datetime64[D]")
    for r, rule in enumerate(rules):
        # A clock this module does not know never starts: no synthetic action rather than a wrong one.
        clock = clocks.get(rule.clock, np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"))
        starts = np.where(applies_by_group[group, r], clock, np.datetime64("NaT"))
        ok = ~np.isnat(starts)
        if not ok.any():
            continue
        uniq, inv = np.unique(starts[ok], return_inverse=True)
        # due_date per distinct start day: the same function the flow uses, so identical dues.
        dues = np.array([due_date(rule, d, calendar) for d in _dates(uniq)], dtype="datetime64[D]")
        due[r, ok] = dues[inv.reshape(-1)]
    c["due"] = np.empty(n, dtype="datetime64[D]")
    for is_tm, kind in ((False, NsiType.case_transfer), (True, NsiType.temporary_move)):
        rows = c["tm"] == is_tm
        if rows.any():
            uniq, inv = np.unique(raised[rows], return_inverse=True)
            c["due"][rows] = np.array([transfer_due(d, policy, calendar, kind) for d in _dates(uniq)], dtype="datetime64[D]")[
                inv.reshape(-1)
            ]

    # Action progress: a step's actions are done the day the step was recorded; the others are
    # done around their due date (some late, a few never) unless the NSI closed first.
    delay_cfg = cfg["other_action_delay_working_days"]
    bands = [delay_cfg[b] for b in ("early", "late", "very_late")]
    shares = [b[2] for b in bands]
    band = rng.choice(len(bands) + 1, size=(len(rules), n), p=[*shares, max(0.0, 1 - sum(shares))])
    offs = rng.random((len(rules), n))
    done = np.full((len(rules), n), np.datetime64("NaT"), dtype="datetime64[D]")
    astatus = np.full((len(rules), n), None, dtype=object)
    closed_early = np.isin(status, ["refused", "withdrawn", "returned", "converted", "ended"])
    for r, rule in enumerate(rules):
        has = ~np.isnat(due[r])
        start_r = clocks.get(rule.clock, np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"))
        # Closing cancels open actions, except those planned on closing (the review on return).
        open_or_closed = np.where(closed_early & ~(start_r >= closed), "cancelled", "open")
        if rule.step in STEPS:
            k = STEPS.index(rule.step)
            d = np.where(recorded[k], step_dates[k], np.datetime64("NaT"))
        elif rule.step in tm_recorded:
            d = np.where(tm_recorded[rule.step], tm_dates[rule.step], np.datetime64("NaT"))
        else:
            delay = np.zeros(n, dtype=np.int64)
            for b, (lo_b, hi_b, _) in enumerate(bands):
                delay = np.where(band[r] == b, lo_b + (offs[r] * (hi_b - lo_b + 1)).astype(np.int64), delay)
            d = np.maximum(calendar.add_working_days_many(np.where(has, due[r], today), delay), np.where(has, start_r, today))
            d = np.where(
                (band[r] < len(bands)) & (d <= today) & (np.isnat(closed) | (d <= closed) | (open_or_closed == "open")),
                d,
                np.datetime64("NaT"),
            )
        d = np.where(has, d, np.datetime64("NaT"))
        done[r] = d
        astatus[r] = np.where(has, np.where(~np.isnat(d), "done", open_or_closed), None)
    return Synthetic(n, c, step_dates, recorded, rules, due, done, astatus, labels)


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
) -> tuple[dict[str, Any], str]:
    """The step's answer, built and dumped through its form in the step registry as a flow would,
    and the history line the registry words for it."""
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
    return answer, registry.effect_of(step, answer, situation, policy, on).detail


def _chunks(n: int) -> Iterator[range]:
    for lo in range(0, n, CHUNK):
        yield range(lo, min(n, lo + CHUNK))


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Plain executemany: SQLite runs it as a C loop; psycopg pipelines it. (SQLAlchemy's
    multi-row VALUES batches were slower on psycopg: it re-parses each 1000-row statement.)"""
    conn.execute(insert(table), rows)


def _write_chunk(conn: Connection, syn: Synthetic, rows: range, seed: int, profile: str) -> None:
    c = syn.cols
    labels = syn.labels
    estate = load_estate()
    sl = slice(rows.start, rows.stop)
    raised, received, move = _dates(c["raised"][sl]), _dates(c["received"][sl]), _dates(c["move"][sl])
    closed, due, allocated = _dates(c["closed"][sl]), _dates(c["due"][sl]), _dates(c["allocated"][sl])
    nsi_rows = []
    for j, i in enumerate(rows):
        form = form_dict(c, i, labels)
        t_team = estate.teams[labels.teams[c["t_team"][i]]]
        allocated_on = allocated[j]
        status = c["status"][i]
        last_touch = closed[j] or raised[j]
        nsi_rows.append(
            {
                "reference": f"seed-{seed}-{i}"[:20],  # replaced below by the id-based reference
                "request_key": f"seed-{seed}-{i}",
                "nsi_type": form["nsi_type"],
                "profile": profile,
                "status": status,
                "crn": form["crn"],
                "name": form["name"],
                "lao": form["lao"],
                "rosh": form["rosh"],
                "mappa_category": form["mappa_category"],
                "mappa_level": form["mappa_level"],
                "diversity_recorded": bool(form["diversity_needs"]),
                "raised_on": raised[j],
                "received_on": received[j],
                "move_on": move[j],
                "due_on": due[j],
                "allocated_on": allocated_on,
                "closed_on": closed[j],
                "transferring_region_code": t_team.region_code,
                "transferring_pdu_code": t_team.pdu_code,
                "transferring_team_code": t_team.code,
                "transferring_practitioner": form["transferring_practitioner"],
                "transferring_spo": form["transferring_spo"],
                "receiving_region_code": estate.pdus[form["receiving_pdu_code"]].region_code,
                "receiving_pdu_code": form["receiving_pdu_code"],
                "receiving_team_code": labels.teams[c["r_team"][i]] if allocated_on else None,
                "receiving_practitioner": _person(int(c["people"][2, i])) if allocated_on else None,
                "responsible_officer": _person(int(c["people"][2, i])) if status == "completed" else None,
                "distance_km": float(c["distance"][i]),
                "form": form,
                "flow_run_id": None,
                "waiting_step": c["waiting"][i],
                "parent_reference": None,
                "created_at": _at(raised[j], 9),
                "updated_at": _at(last_touch, 17),
            }
        )
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

    # Actions, in Action List order per NSI as register_nsi adds them.
    rule_idx, row_idx = np.nonzero(~np.isnat(syn.action_due[:, sl]))
    order = np.lexsort((rule_idx, row_idx))
    rule_idx, row_idx = rule_idx[order], row_idx[order]
    dues = _dates(syn.action_due[rule_idx, row_idx + rows.start])
    dones = _dates(syn.action_done[rule_idx, row_idx + rows.start])
    statuses = syn.action_status[rule_idx, row_idx + rows.start].tolist()
    rules = syn.action_rules
    _insert_many(
        conn,
        Action.__table__,
        [
            {
                "nsi_id": ids[j],
                "code": rules[r].code,
                "title": rules[r].title,
                "owner_role": rules[r].owner,
                "due_on": d,
                "done_on": dn,
                "status": s,
                "escalated_on": None,
            }
            for r, j, d, dn, s in zip(rule_idx.tolist(), row_idx.tolist(), dues, dones, statuses, strict=True)
        ],
    )

    # Step records and history: raised, each recorded step, and how the NSI closed.
    steps: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    step_dates = [_dates(syn.step_dates[k, sl]) for k in range(len(STEPS))]
    policy = get_policy(profile)
    for j, i in enumerate(rows):
        nid = ids[j]
        row = nsi_rows[j]
        form = row["form"]
        pdu_name = estate.pdus[form["receiving_pdu_code"]].name
        situation = registry.Situation(
            reference=f"{REFERENCE_PREFIX[NsiType(row['nsi_type'])]}{nid:06d}",
            status="raised",
            concurrent=False,  # synthetic NSIs follow the sequential shape (above)
            receiving_pdu_code=row["receiving_pdu_code"],
            transferring_team_code=row["transferring_team_code"],
            transferring_pdu_code=row["transferring_pdu_code"],
            transferring_practitioner=row["transferring_practitioner"],
        )
        history.append(
            {
                "nsi_id": nid,
                "key": "raised",
                "event": "raised",
                "detail": raised_detail(form["nsi_type"], pdu_name),
                "actor": form["raised_by"],
                "at": _at(raised[j], 9),
                "flow_run_id": None,
            }
        )
        for k, step in enumerate(STEPS):
            if not syn.step_recorded[k, i]:
                break
            on = step_dates[k][j]
            answer, detail = _answer(step, on, i, c, labels, situation, policy)
            at = _at(on, 10 + k)
            steps.append(
                {
                    "nsi_id": nid,
                    "step": step,
                    "answer": answer,
                    "recorded_by": answer["recorded_by"],
                    "recorded_at": at,
                    "flow_run_id": None,
                    "done_on": on,
                }
            )
            history.append(
                {
                    "nsi_id": nid,
                    "key": f"step:{step}",
                    "event": step,
                    "detail": detail,
                    "actor": answer["recorded_by"],
                    "at": at,
                    "flow_run_id": None,
                }
            )
        status = c["status"][i]
        for step in (SUPPORT_STEP, OUTCOME_STEP):
            if not c["tm_recorded"][step][i]:
                continue
            on = _dates(c["tm_dates"][step][i : i + 1])[0]
            answer, detail = _answer(step, on, i, c, labels, situation, policy)
            at = _at(on, 11)
            steps.append(
                {
                    "nsi_id": nid,
                    "step": step,
                    "answer": answer,
                    "recorded_by": answer["recorded_by"],
                    "recorded_at": at,
                    "flow_run_id": None,
                    "done_on": on,
                }
            )
            history.append(
                {
                    "nsi_id": nid,
                    "key": f"step:{step}",
                    "event": step,
                    "detail": detail,
                    "actor": answer["recorded_by"],
                    "at": at,
                    "flow_run_id": None,
                }
            )
        if status == "withdrawn" or (status in ("returned", "converted", "ended") and not c["tm_recorded"][OUTCOME_STEP][i]):
            detail = "moved again before the transfer finished" if status == "withdrawn" else f"temporary move {status}"
            history.append(
                {
                    "nsi_id": nid,
                    "key": status,
                    "event": status,
                    "detail": detail,
                    "actor": form["transferring_practitioner"],
                    "at": _at(closed[j], 16),
                    "flow_run_id": None,
                }
            )
    if steps:
        _insert_many(conn, StepRecord.__table__, steps)
    _insert_many(conn, HistoryEntry.__table__, history)


def seed(n: int, seed: int = 0, as_of: dt.date | None = None, url: str | None = None, progress: Any = None) -> int:
    """Write n synthetic NSIs with their actions, step records and histories; returns n.

    Raises SeedExists when this seed was used on the store before (request keys are unique).
    `progress`, when given, is called with the number of NSIs written after each chunk.
    """
    if n < 0:
        raise ValueError("transfers: must be zero or more")
    settings = get_settings()
    as_of = as_of or settings.current_date()
    syn = generate(n, seed, as_of)
    engine = get_engine(url or settings.effective_database_url)
    nsi = Nsi.__table__
    with engine.begin() as conn:
        if conn.scalar(select(nsi.c.id).where(nsi.c.request_key == f"seed-{seed}-0")) is not None:
            raise SeedExists(f"seed: the store already holds NSIs from seed {seed}; use another --seed")
        for rows in _chunks(n):
            _write_chunk(conn, syn, rows, seed, get_policy(settings.profile).profile)
            if progress is not None:
                progress(rows.stop)
    return n

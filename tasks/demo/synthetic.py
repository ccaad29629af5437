"""Synthetic NSIs drawn: every random draw made up front from one numpy Generator, and the lifecycle
it implies (when each step is recorded, how each NSI ends, when people mark actions done), as column
arrays. Writes nothing: tasks/demo/seed.py writes them. The numbers that shape the data live in
config/seed.yaml."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from dateutil.relativedelta import relativedelta

from tasks.calendar import WorkingDayCalendar, get_calendar
from tasks.config_files import read_yaml
from tasks.demo.transfer_forms import CRN_LETTERS, DIVERSITY_NEEDS, DOCUMENTS, FIRST_NAMES, REASONS, SURNAMES, Labels
from tasks.domain.actions import transfer_due
from tasks.domain.form import NsiType
from tasks.domain.policy import Policy, get_policy
from tasks.domain.steps import SEQUENTIAL_STEPS, TEMPORARY_MOVE_STEPS
from tasks.domain.temporary_moves import SUPPORTING
from tasks.places.estate import load_estate
from tasks.settings import get_settings

# Synthetic NSIs follow the sequential shape (1), step after step, as the transfers still open
# from before the concurrent shape do: the step registry's order (Prefect-free).
STEPS: tuple[str, ...] = tuple(SEQUENTIAL_STEPS)
# The temporary-move flow's steps and its supporting status.
SUPPORT_STEP, OUTCOME_STEP = TEMPORARY_MOVE_STEPS
NEVER = -(10**6)  # an action people never mark done


@lru_cache(maxsize=2)
def load_seed_profile(path: Path | None = None) -> dict[str, Any]:
    path = path or get_settings().config_dir / "seed.yaml"
    return read_yaml(path)


def _pick(rng: np.random.Generator, shares: dict[Any, float], n: int) -> tuple[list[Any], np.ndarray]:
    """Keys and an index array drawn with the given shares (normalised)."""
    keys = list(shares)
    p = np.array([float(shares[k]) for k in keys])
    return keys, rng.choice(len(keys), size=n, p=p / p.sum())


def to_dates(a: np.ndarray) -> list[dt.date | None]:
    return a.astype("datetime64[D]").astype(object).tolist()


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
            c["due"][rows] = np.array([transfer_due(d, policy, calendar, kind) for d in to_dates(uniq)], dtype="datetime64[D]")[
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

"""The concurrent shape's waiting tasks: which a Transfer wants open now, and the bookkeeping of
the runs that wait for them (opened, started, recorded, done).

The transfer's run reads `progress` when it wakes, starts a `transfer-task` run for each task to
start and stops the runs of tasks that no longer apply; each task's run records that it started
and, once its answer is recorded and the transfer woken, that it is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.domain import steps as registry
from tasks.domain.transfer import CLOSED, Transfer
from tasks.domain.work_tags import task_tags
from tasks.store.models import WaitingTask, utcnow


@dataclass(frozen=True)
class TaskToStart:
    task: str
    round: int
    owner_role: str
    title: str
    # Its run's tags besides the reference: the owner role and the PDU whose people own it (codes only).
    tags: tuple[str, ...] = ()


@dataclass
class Progress:
    """What the transfer's run does after reading the store: start these task runs, stop those,
    and suspend until woken (or finish)."""

    reference: str
    crn: str
    lao: bool
    status: str
    seen: int
    finished: bool
    to_start: list[TaskToStart] = field(default_factory=list)
    to_stop: list[str] = field(default_factory=list)


def wanted_tasks(t: Transfer) -> dict[str, str]:
    """task -> owner role: every task whose gate is open and that is not done, now."""
    nsi, policy = t.nsi, t.policy
    if nsi.status in ("refused", "withdrawn", "superseded"):
        return {}
    if (disputed := t.disputed()) is not None:
        return {f"dispute-{disputed.seq}": policy.dispute_owner}
    done = t.done_codes()
    wanted: dict[str, str] = {}
    challenge = t.open_challenge()
    for action in nsi.actions:
        rule = next((r for r in policy.actions if r.code == action.code), None)
        if action.status != "open" or rule is None or rule.recurring:
            continue  # a recurring check is recorded with action-done again and again; reminded, not a task
        if nsi.status == "completed":
            if rule.task != "completion":
                wanted[rule.task] = rule.owner  # after the move: still open, still reminded
            continue
        if any(g not in done for g in rule.opens_after):
            continue
        if rule.task == "completion" and (challenge is not None or t.blocking_completion()):
            continue
        wanted[rule.task] = rule.owner
    if challenge is not None:
        wanted[f"challenge-{challenge.seq}"] = policy.challenge_owner
    return wanted


def progress(t: Transfer) -> Progress:
    """Open a waiting task for everything that has become possible, close the tasks that no
    longer apply, and note the wake-up sequence read. Idempotent."""
    nsi, policy = t.nsi, t.policy
    seen = nsi.wake_seq
    wanted = wanted_tasks(t)
    latest: dict[str, WaitingTask] = {}
    for row in nsi.tasks:
        if row.task not in latest or row.round > latest[row.task].round:
            latest[row.task] = row
    to_stop = []
    for row in nsi.tasks:
        if row.status == "open" and row.task not in wanted:
            row.status, row.closed_at = "cancelled", utcnow()
            if row.flow_run_id:
                to_stop.append(row.flow_run_id)
    to_start = []
    for task, owner in wanted.items():
        row = latest.get(task)
        title = registry.spec_for(task, policy).title
        if row is None or row.status in ("cancelled", "superseded"):
            row = WaitingTask(task=task, round=(row.round + 1) if row else 1, owner_role=owner, status="open")
            nsi.tasks.append(row)
            t.note(f"opened:{task}:{row.round}", "task opened", f"{title}: waiting for {owner.replace('_', ' ')}", "casetransfer")
        if row.status == "open" and row.flow_run_id is None:
            tags = task_tags(owner, nsi.transferring_pdu_code, nsi.receiving_pdu_code)
            to_start.append(TaskToStart(task, row.round, owner, title, tags))
    nsi.seen_seq = max(nsi.seen_seq, seen)
    return Progress(nsi.reference, nsi.crn, nsi.lao, nsi.status, seen, nsi.status in CLOSED, to_start, to_stop)


def latest_round(t: Transfer, task: str) -> WaitingTask | None:
    rows = [r for r in t.nsi.tasks if r.task == task]
    return max(rows, key=lambda r: r.round) if rows else None


def task_started(t: Transfer, task: str, round_: int, flow_run_id: str) -> bool:
    """Record the run that waits for a task. False when the task is no longer open (the transfer
    was withdrawn or closed while its run was opening tasks): the caller stops that run, since the
    withdrawal could not know of it."""
    row = next((r for r in t.nsi.tasks if r.task == task and r.round == round_), None)
    if row is None or row.status != "open":
        return False
    row.flow_run_id = flow_run_id
    return True


def task_done(t: Transfer, task: str, round_: int) -> None:
    """The task's run has recorded its answer and woken the transfer: nothing of it is left to recover."""
    row = next((r for r in t.nsi.tasks if r.task == task and r.round == round_), None)
    if row is not None and row.status == "recorded":
        row.status = "done"

"""Each person finds their own work (issue 28, item 7): a waiting task's run is tagged with the
role that owns it and the PDU whose people hold that role for this transfer, and the emails link
to the Prefect UI's runs list filtered to both.

The owner role names a side of the transfer (config/email.yaml `reminders.sides`, the same map the
digests and the access rules read); the side names the PDU, the NSI's transferring or receiving
PDU code. Tags are codes only: `owner:receiving_spo`, `pdu:N50GMS`. A limited access case's tags
are the same as any other's, so no tag ever carries a name, a CRN or anything typed.

The link is Prefect 3.8.8's runs page at the UI's root (`/runs`, the UI it serves beside the newer
one at `/v2`). Its query takes `tag` once per tag and lists the runs carrying **all** of them
(the page maps it to `flow_runs.tags.all_`), `state` by state name, and a time window as
`type=span&seconds=-N` (runs started in the last N seconds; without it the page shows the last
seven days only). The `/v2/runs` page takes `tags=a,b` but lists runs carrying **any** of them,
so a link there would show every PDU's tasks for the role: the emails do not use it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from tasks.config_files import read_yaml
from tasks.settings import get_settings

OWNER_TAG = "owner:"
PDU_TAG = "pdu:"
# The state Prefect gives a run suspended for its Resume form: what a task waiting for a person is in.
WAITING_STATE = "Suspended"
SIDES = ("transferring", "receiving")


@lru_cache(maxsize=4)
def _sides(path: Path, mtime: float) -> dict[str, str]:
    sides = ((read_yaml(path) or {}).get("reminders") or {}).get("sides") or {}
    bad = {role: side for role, side in sides.items() if side not in SIDES}
    if bad:
        raise ValueError(f"config/email.yaml: reminders.sides: {bad} is not one of {', '.join(SIDES)}")
    return dict(sides)


def sides() -> dict[str, str]:
    """Owner role -> the side of the transfer whose PDU does that work (config/email.yaml)."""
    path = get_settings().config_dir / "email.yaml"
    return _sides(path, path.stat().st_mtime)


def owner_pdu(owner_role: str, transferring_pdu: str, receiving_pdu: str) -> str:
    """The PDU whose people own a task of `owner_role` on a transfer between these PDUs."""
    side = sides().get(owner_role)
    if side is None:
        raise ValueError(f"config/email.yaml: reminders.sides has no side for owner role {owner_role!r}")
    return transferring_pdu if side == "transferring" else receiving_pdu


def task_tags(owner_role: str, transferring_pdu: str, receiving_pdu: str) -> tuple[str, str]:
    """The tags a waiting task's run carries besides its NSI's reference: its owner role and the
    owning PDU's code (references only)."""
    return f"{OWNER_TAG}{owner_role}", f"{PDU_TAG}{owner_pdu(owner_role, transferring_pdu, receiving_pdu)}"


def runs_list_url(ui_url: str, pdu_code: str, owner_role: str, waiting_days: int) -> str:
    """The Prefect UI's runs list of the tasks waiting for `owner_role` in `pdu_code`, over the
    last `waiting_days` (a task waits at most the policy's suspend_timeout_days, so none older is
    still waiting). `ui_url` is the people's address of the UI (settings.ui_url)."""
    query = [
        ("tag", f"{PDU_TAG}{pdu_code}"),
        ("tag", f"{OWNER_TAG}{owner_role}"),
        ("state", WAITING_STATE),
        ("type", "span"),
        ("seconds", str(-waiting_days * 86400)),
    ]
    return f"{ui_url.rstrip('/')}/runs?{urlencode(query, safe=':')}"

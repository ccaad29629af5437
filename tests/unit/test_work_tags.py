"""Each person finds their own work (issue 28, item 7): a waiting task's run is tagged with its
owner role and the PDU whose people hold it, from the side config/email.yaml gives the role, and
the emails' link is the Prefect UI's runs list filtered to both tags."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tasks.config_files import read_yaml
from tasks.domain.policy import get_policy
from tasks.domain.work_tags import owner_pdu, runs_list_url, task_tags
from tasks.settings import CONFIG_DIR

FROM, TO = "LDNBBG", "N50GMS"


def test_a_task_is_tagged_with_its_owner_role_and_the_pdu_of_the_side_that_does_it():
    assert task_tags("receiving_spo", FROM, TO) == ("owner:receiving_spo", "pdu:N50GMS")
    assert task_tags("admin", FROM, TO) == ("owner:admin", "pdu:N50GMS")  # case admins are the receiving area's
    assert task_tags("transferring_pp", FROM, TO) == ("owner:transferring_pp", "pdu:LDNBBG")
    assert task_tags("receiving_head", FROM, TO) == ("owner:receiving_head", "pdu:N50GMS")


def test_every_owner_role_in_config_lands_on_the_pdu_of_its_configured_side():
    sides = read_yaml(CONFIG_DIR / "email.yaml")["reminders"]["sides"]
    assert len(sides) >= 7
    for role, side in sides.items():
        assert owner_pdu(role, FROM, TO) == {"transferring": FROM, "receiving": TO}[side], role


def test_a_temporary_move_within_one_pdu_tags_every_task_with_that_pdu():
    assert {task_tags(r, "N50BOLT", "N50BOLT")[1] for r in ("transferring_pp", "receiving_spo")} == {"pdu:N50BOLT"}


def test_a_role_with_no_side_is_refused_naming_the_config_that_lacks_it():
    with pytest.raises(ValueError, match=r"config/email.yaml: reminders.sides has no side for owner role 'probation_cat'"):
        task_tags("probation_cat", FROM, TO)


def test_the_link_is_the_runs_list_of_the_tasks_waiting_with_both_tags_over_the_longest_a_task_can_wait():
    days = get_policy().suspend_timeout_days
    url = runs_list_url("https://casetransfer.example.gov.uk/", "N55LEE", "receiving_spo", days)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "casetransfer.example.gov.uk", "/runs")
    assert parse_qsl(parts.query) == [
        ("tag", "pdu:N55LEE"),  # repeated `tag`: the runs page lists the runs carrying all of them
        ("tag", "owner:receiving_spo"),
        ("state", "Suspended"),  # waiting for a person
        ("type", "span"),
        ("seconds", str(-days * 86400)),  # without a span the page shows the last seven days only
    ]
    assert url == (
        f"https://casetransfer.example.gov.uk/runs?tag=pdu:N55LEE&tag=owner:receiving_spo&state=Suspended&type=span&seconds=-{days * 86400}"
    )


def test_a_ui_served_under_a_path_keeps_its_path():
    url = runs_list_url("https://intranet.example/prefect", "N50GMS", "admin", 30)
    assert url.startswith("https://intranet.example/prefect/runs?tag=pdu:N50GMS&tag=owner:admin&")


@pytest.mark.parametrize("profile", sorted(p.stem for p in (CONFIG_DIR / "profiles").glob("*.yaml")))
def test_every_role_that_owns_a_task_in_a_profile_has_a_side_so_every_task_run_can_be_tagged(profile: str):
    policy = get_policy(profile)
    owners = {r.owner for r in policy.actions} | {policy.challenge_owner, policy.dispute_owner}
    assert {role: task_tags(role, FROM, TO)[1] for role in owners}  # raises for a role with no side

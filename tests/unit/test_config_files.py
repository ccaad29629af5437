import os

from tasks import config_files


def test_a_yaml_file_is_parsed_once_and_each_caller_gets_its_own_copy(tmp_path):
    path = tmp_path / "timescales.yaml"
    path.write_text("actions:\n  - code: ALLOC\n    working_days: 5\n")
    first = config_files.read_yaml(path)
    first["actions"][0]["working_days"] = 99
    assert config_files.read_yaml(path) == {"actions": [{"code": "ALLOC", "working_days": 5}]}


def test_an_edited_yaml_file_is_read_afresh(tmp_path):
    path = tmp_path / "closures.yaml"
    path.write_text("closures: []\n")
    assert config_files.read_yaml(path) == {"closures": []}
    path.write_text("closures:\n  - date: 2026-12-24\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later mtime, whatever the clock
    assert str(config_files.read_yaml(path)["closures"][0]["date"]) == "2026-12-24"


def test_dates_in_yaml_are_dates_as_with_the_pure_python_parser(tmp_path):
    import datetime as dt

    path = tmp_path / "settings.yaml"
    path.write_text("today: 2026-12-21\n")
    assert config_files.read_yaml(path) == {"today": dt.date(2026, 12, 21)}


def test_csv_rows_come_back_as_fresh_dicts(tmp_path):
    path = tmp_path / "pdus.csv"
    path.write_text("pdu_code,pdu_name\nN07CEN,Camden and Islington\n")
    rows = config_files.read_csv(path)
    rows[0]["pdu_name"] = "changed"
    assert config_files.read_csv(path) == [{"pdu_code": "N07CEN", "pdu_name": "Camden and Islington"}]


def test_preload_parses_every_config_file_of_the_project():
    from tasks.settings import CONFIG_DIR

    count = config_files.preload(CONFIG_DIR)
    assert count >= len(list(CONFIG_DIR.glob("*.yaml"))) + 5  # the estate's CSV files too


def test_every_deployment_run_again_after_a_lost_process_is_in_prefect_yaml_and_none_is_a_change():
    import yaml

    from tasks.settings import ROOT, get_settings

    names = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    again = set(get_settings().rerun_lost_deployments)
    assert again and again <= names
    # A change made by a person (an amendment, a withdrawal) is never made twice behind their back.
    assert not again & {"raise-transfer", "amend-transfer", "withdraw-transfer", "stop-clock", "restart-clock", "recover-transfers"}

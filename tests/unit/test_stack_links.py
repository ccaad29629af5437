"""The links in the emails a stack's workers send, and in `casetransfer status`, lead to the UI
that stack serves: on another port than the default, or at the address the service names."""

from ops.stack import Stack


def test_a_stack_on_another_port_links_to_its_own_ui(tmp_path, monkeypatch):
    monkeypatch.delenv("CASETRANSFER_UI_URL", raising=False)

    env = Stack(home=tmp_path / "prefect", port=4300).child_env()

    assert env["CASETRANSFER_UI_URL"] == env["PREFECT_UI_URL"] == "http://127.0.0.1:4300"


def test_an_address_the_service_names_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CASETRANSFER_UI_URL", "https://casetransfer.probation.example")

    env = Stack(home=tmp_path / "prefect", port=4300).child_env()

    assert env["CASETRANSFER_UI_URL"] == "https://casetransfer.probation.example"

"""The production profile's API credential: generated once into a file only its user can read,
or taken from the environment or a named file; a malformed one is refused naming where it came from."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ops.credential import AUTH_ENV, AUTH_FILE_ENV, api_credential


@pytest.fixture(autouse=True)
def _no_operator_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTH_ENV, raising=False)
    monkeypatch.delenv(AUTH_FILE_ENV, raising=False)


def test_a_credential_is_generated_once_readable_by_its_user_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "prefect-production" / "api-auth"
    first, source = api_credential(path)
    user, password = first.split(":", 1)
    assert user == "casetransfer" and len(password) >= 40 and source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert api_credential(path)[0] == first  # the next up-production and the CLI read the same one


def test_the_environment_wins_and_its_source_is_named_not_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTH_ENV, "ops:s3cret-from-env")
    value, source = api_credential(tmp_path / "api-auth")
    assert value == "ops:s3cret-from-env" and source == f"${AUTH_ENV}" and "s3cret" not in source
    assert not (tmp_path / "api-auth").exists()  # nothing generated, nothing written


def test_a_named_file_is_read_and_a_missing_or_malformed_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "mounted-secret"
    monkeypatch.setenv(AUTH_FILE_ENV, str(secret))
    with pytest.raises(RuntimeError, match=f"{AUTH_FILE_ENV}: .* does not exist"):
        api_credential(tmp_path / "api-auth")
    secret.write_text("no-colon-here\n")
    with pytest.raises(RuntimeError, match="must be user:password") as refused:
        api_credential(tmp_path / "api-auth")
    assert "no-colon-here" not in str(refused.value)
    secret.write_text("ops:from-file\n")
    assert api_credential(tmp_path / "api-auth") == ("ops:from-file", str(secret))

"""Settings: config/settings.yaml defaults, overridden by CASETRANSFER_* environment variables."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tasks.config_files import read_yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
TEMPLATES_DIR = ROOT / "templates"


class _YamlDefaults(PydanticBaseSettingsSource):
    """config/settings.yaml, below environment variables in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = CONFIG_DIR / "settings.yaml"
        return read_yaml(path) or {} if path.exists() else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASETRANSFER_", extra="ignore")

    data_dir: Path = Field(default=ROOT / ".data", description="Local state: SQLite, outbox, trackers")
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in data_dir")
    profile: Literal["adult", "youth"] = "adult"
    estate_version: str = "2025-06"
    timezone: str = "Europe/London"
    calendar: str = "england-and-wales"
    today: dt.date | None = Field(default=None, description="Pin 'today' (tests, demos)")
    config_dir: Path = CONFIG_DIR
    case_transfer_deployment: str = "case-transfer/case-transfer"
    temporary_move_deployment: str = "temporary-move/temporary-move"
    notice_deployment: str = "send-notice/send-notice"
    tracker_dir: Path | None = None
    # Where the command line writes the traceback of an unexpected error (the person sees one line);
    # default data_dir/logs/cli-errors.log.
    cli_error_log: Path | None = None
    # Go-live imports (tasks/domain/importer.py): the server's folder the import-tracker deployment reads
    # a legacy tracker from (default data_dir/imports), and how many imported NSIs' flow runs are
    # started a minute afterwards (the embedded stack takes tens; the production profile more).
    import_dir: Path | None = None
    import_runs_per_minute: float = Field(default=20.0, gt=0)
    # Where delivered trackers can be fetched from (issue 16): a workbook too large to attach is
    # sent as a link, <tracker_base_url>/<YYYY-MM-DD>/<file>; unset, the email names the file only.
    tracker_base_url: str | None = None
    # Regions whose entry in config/tracker_mailboxes.yaml says `delivery: folder` get their
    # workbook copied to <tracker_shared_dir>/<region code>/ instead of an email.
    tracker_shared_dir: Path | None = None
    outbox: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "casetransfer@probation.example.gov.uk"
    prefect_api_url: str = "http://127.0.0.1:4200/api"
    ui_url: str = "http://127.0.0.1:4200"
    # A transfer's run segments take seconds (then it suspends); one "running" this long lost its process.
    stale_run_seconds: float = 600.0
    # Dead-worker detection (ops.stack.dead_worker_automations). Every flow run a worker starts
    # sends Prefect's heartbeat event this often (PREFECT_FLOWS_HEARTBEAT_FREQUENCY; Prefect's minimum is 30).
    run_heartbeat_seconds: int = Field(default=30, ge=30)
    # A run still pending or running this long after its last state change is checked by
    # recover-transfers (an automation starts it) ...
    run_check_seconds: float = 55.0
    # ... which reschedules it if no heartbeat came for this long: the heartbeat and some slack.
    run_heartbeat_timeout_seconds: float = 50.0
    # recover-transfers runs one at a time; the one holding the slot does this many queued behind it.
    recover_absorbed_at_most: int = Field(default=500, ge=1)
    # A transfer's run or task run that failed is rescheduled by recover-transfers this many times at most.
    failed_run_reschedules: int = Field(default=3, ge=0)
    # Deployments whose runs recover-transfers puts back in the queue when their process died.
    rerun_lost_deployments: list[str] = Field(default_factory=list)
    recover_retries: int = Field(default=3, ge=0)
    recover_retry_delay_seconds: float = Field(default=10.0, ge=0)
    # A worker that exits on its own is started again (ops.supervise), within limits.
    worker_restart_delay_seconds: float = Field(default=2.0, ge=0)
    worker_restart_burst: int = Field(default=5, ge=1)
    worker_restart_window_seconds: float = Field(default=300.0, gt=0)
    # Fault testing only: seconds to hold a step's task after its answer is committed.
    fault_delay_seconds: float = 0.0
    # Fault testing only: seconds a transfer's run waits between reading the store and suspending
    # (the window in which a finished task's wake-up must not be lost).
    fault_wake_delay_seconds: float = 0.0
    # Pin the process shape of new Case Transfers (1 sequential, 2 concurrent); empty: the policy's.
    shape_version: int | None = None
    # How long a finished task keeps trying to wake its transfer's run before leaving it to `recover`.
    wake_timeout_seconds: float = 120.0
    # recover re-sends a wake-up to a transfer's run suspended this long with a change it has not read.
    wake_resend_seconds: float = 60.0
    # A claim to answer a waiting step (prefect_runs.engine.claim_answer) that stands this long
    # without its answer arriving may be taken over: its sender died before resuming.
    answer_claim_seconds: float = 60.0
    # A sender who lost the race waits this long for the other answer to be recorded, to be told by whom.
    answered_by_wait_seconds: float = 15.0
    # After an answer is recorded, the sender waits up to this long to be told the status the run
    # moved on to (the next wait is written a moment after the record).
    recorded_status_wait_seconds: float = 10.0
    # Days after a transfer closes before its flow runs are deleted from Prefect (prefect-retention).
    prefect_run_retention_days: int = Field(default=30, ge=0)
    # How long the store keeps a closed NSI's record. Stated, not enforced here (README).
    store_retention_years: int = Field(default=7, ge=1)
    # Who is acting on the command line (issue 28): `typed`, the name given with --by or
    # --recorded-by (the embedded demo, the tests); `os_account`, the operating-system account
    # mapped to a staff record (config/staff/people.yaml `os_accounts`), checked against
    # config/access.yaml before anything is sent. The production profile sets os_account.
    actor_from: Literal["typed", "os_account"] = "typed"
    # The staff list (default config/staff/people.yaml): a service's own, or a test's.
    staff_file: Path | None = None
    # Who signs in to the production profile's UI and API (issue 28; docs/production.md). none:
    # no proxy, the shared basic-auth credential (the embedded stack, most tests); local: nginx in
    # front with an htpasswd file of individual accounts; sso: nginx asking an OIDC proxy
    # (oauth2-proxy in front of Entra ID) at sso_auth_url. The API refuses what bypasses the proxy.
    auth_mode: Literal["none", "local", "sso"] = "none"
    proxy_host: str = "127.0.0.1"
    proxy_port: int = Field(default=8443, ge=1, le=65535)
    # PEM files; unset, a self-signed pair is made with openssl in the proxy's folder.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Default <prefect home>/proxy/htpasswd; `python -m ops.proxy add-account` writes it.
    htpasswd_file: Path | None = None
    # The secret only the proxy sends the API (default <prefect home>/proxy/secret, made once, mode 0600).
    proxy_secret_file: Path | None = None
    sso_auth_url: str = "http://127.0.0.1:4180"
    # The response header of sso_auth_url's /oauth2/auth naming the person (matched to `signin`).
    sso_user_header: str = "X-Auth-Request-Email"
    # The example people of config/staff/people.yaml may sign in (demo and tests only).
    allow_example_staff: bool = False

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[no-untyped-def,override]
        return (init_settings, env_settings, dotenv_settings, file_secret_settings, _YamlDefaults(settings_cls))

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'casetransfer.sqlite'}"

    @property
    def effective_outbox(self) -> Path:
        return self.outbox or self.data_dir / "outbox"

    @property
    def effective_import_dir(self) -> Path:
        return self.import_dir or self.data_dir / "imports"

    @property
    def effective_tracker_dir(self) -> Path:
        return self.tracker_dir or self.data_dir / "trackers"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.zone)

    def current_date(self) -> dt.date:
        """Today in Europe/London, unless pinned with CASETRANSFER_TODAY."""
        return self.today or self.now().date()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()

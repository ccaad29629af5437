"""The `casetransfer` command: the user's door into the store and the flows.

Exit codes: 0 done, 2 bad input (the message on stderr names the field), 3 not found.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from ops import actor, boundary
from ops.cli_changes import amend, restart_clock, stop_clock
from ops.cli_nightly import remind, tracker
from ops.console import answers, err, fail, out

# Nothing heavier than typer is imported here: each command imports what it uses, so that
# `--help`, `working-days` and `locate` start fast (bench/cli_startup.py).

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="England & Wales probation case transfers."
)
db_app = typer.Typer(no_args_is_help=True, help="The domain database.")
app.add_typer(db_app, name="db")


def _date(value: str, field: str) -> dt.date:
    return boundary.day(value, field)


@app.command("working-days")
def working_days(start: str, days: int) -> None:
    """Print the date DAYS working days after START (day 0 rolls to the next working day)."""
    from tasks.calendar import get_calendar
    from tasks.settings import get_settings

    day, days = _date(start, "start"), boundary.count(days, "days", "working_days")
    print(get_calendar(get_settings().calendar).add_working_days(day, days).isoformat())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the domain database to the latest schema."""
    from tasks.store.migrate import upgrade, upgrade_words

    out.print(upgrade_words(*upgrade()), highlight=False)


def _read_form_file(path: Path) -> dict[str, Any]:
    # The one bounded loader (tasks/config_files.load_yaml) that reads config and mapping files too.
    data = boundary.yaml_file(path, "form")
    if not isinstance(data, dict):
        fail("form: the file must hold one object of field: value pairs")
    return data


@app.command("raise")
def raise_(
    form_file: Path = typer.Argument(..., help="The transfer form, JSON or YAML"),
    supersedes: str | None = typer.Option(None, "--supersedes", help="Moving again: the person's open NSI this one replaces"),
) -> None:
    """Raise a Case Transfer or Temporary Move NSI: validate, store, start its flow run."""
    from prefect_runs import engine
    from tasks.domain.form import FormError, parse_form

    data = _read_form_file(form_file)
    if supersedes:
        if data.get("supersedes") and str(data["supersedes"]).strip().upper() != supersedes.strip().upper():
            fail(f"supersedes: the form says {data['supersedes']} and --supersedes {supersedes}; give one")
        data["supersedes"] = supersedes
    try:
        form = actor.raiser(parse_form(data))  # in production: raised by the signed-in person
        import services

        reference, flow_run_id = services.raise_transfer(form)
    except FormError as exc:
        fail(f"The form was not accepted; nothing was stored.\n{exc}")
    except engine.EngineError as exc:
        fail(f"Nothing was stored: {exc}", 1)
    print(reference)
    print(f"flow run {flow_run_id}", file=sys.stderr)


def _parse_fields(args: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) <= 2:
            fail(f"record: expected --field value, got {arg!r}")
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                value = "true"  # a bare flag, like --suitable
            else:
                i += 1
                value = args[i]
        if name in fields:
            existing = fields[name]
            fields[name] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            fields[name] = value
        i += 1
    return fields


def _step_help(reference: str, step: str) -> str:
    """The fields of one step's form: `casetransfer record REF STEP --help`."""
    from tasks.domain import steps as registry
    from tasks.domain import transfer_views, transfers
    from tasks.domain.form import FormError
    from tasks.domain.policy import get_policy

    try:
        policy = transfer_views.policy_of(reference)
    except transfers.NotFound:
        policy = get_policy()
    try:
        spec = registry.spec_for(step.replace("-", "_") if not step.startswith(("challenge-", "dispute-")) else step, policy)
    except FormError as exc:
        fail(str(exc))
    lines = [f"casetransfer record {reference.upper()} {spec.name} --field value ...", "", (spec.form.__doc__ or "").strip(), ""]
    for flag, desc, required in registry.field_help(spec.name, policy):
        lines.append(f"  {flag:<30} {'(required) ' if required else ''}{desc}")
    lines += ["", "  --no-wait                      Send and return at once", "  --timeout SECONDS              How long to wait"]
    return "\n".join(lines)


@app.command("record", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def record(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NSI reference, e.g. CT000001"),
    step: str = typer.Argument(..., help="allocation, address_assessment, police_checks, ..."),
    wait: bool = typer.Option(True, help="Wait until the flow has recorded the step"),
    timeout: float = typer.Option(120.0, help="Seconds to wait"),
) -> None:
    """Answer a waiting step: --field value ... (the same fields as the Prefect UI's Resume form)."""
    from prefect_runs import engine
    from tasks.domain import transfers
    from tasks.domain.form import FormError

    if "--help" in ctx.args or "-h" in ctx.args:
        print(_step_help(reference, step))
        return
    fields = _parse_fields(list(ctx.args))
    import services
    from tasks.domain.document_config import side_task

    fields["recorded_by"] = actor.name(fields.get("recorded_by"), reference, task=side_task(step, fields), field="--recorded-by")

    try:
        print(services.send_answer(reference, side_task(step, fields), fields, wait, timeout))
    except (FormError, transfers.StepRefused) as exc:
        fail(f"The answer was not accepted; nothing was recorded.\n{exc}")
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    except engine.EngineError as exc:
        fail(f"{reference.upper()}: {exc}", 1)


def _by(value: str | None, reference: str, command: str | None = None, task: str | None = None) -> str:
    """Who the record says did it: ops/actor.py (typed, or in production the signed-in person, checked)."""
    return actor.name(boundary.text(value, "--by") or None, reference, command, task)


@app.command("withdraw")
def withdraw(reference: str, reason: str = typer.Option(..., "--reason"), by: str | None = typer.Option(None, "--by")) -> None:
    """Withdraw a transfer at any step; its flow run stops."""
    import services
    from tasks.domain import transfers
    from tasks.domain.decisions import RuleBroken

    boundary.text(reason, "--reason")
    try:
        services.withdraw(reference, reason, _by(by, reference, "withdraw"))
    except (RuleBroken, transfers.StepRefused) as exc:
        fail(str(exc))
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    print(f"{reference.upper()}: withdrawn")


@app.command("escalate")
def escalate(reference: str, concern: str = typer.Option(..., "--concern"), by: str | None = typer.Option(None, "--by")) -> None:
    """Escalate a concern about a transfer to the SPO; both sides' SPOs are emailed at once."""
    import services
    from tasks.domain import transfers
    from tasks.domain.decisions import RuleBroken

    boundary.text(concern, "--concern")
    try:
        n = services.escalate(reference, concern, _by(by, reference, "escalate"))
    except RuleBroken as exc:
        fail(str(exc))
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    print(f"{reference.upper()}: escalated ({n})")


@app.command("action-done")
def action_done(
    reference: str, code: str, by: str | None = typer.Option(None, "--by"), on: str | None = typer.Option(None, "--on")
) -> None:
    """Mark an action with no waiting step of its own as done (documents, VLO liaison...)."""
    from prefect_runs import engine
    from tasks.domain import transfer_views, transfers
    from tasks.domain.decisions import RuleBroken
    from tasks.domain.form import FormError

    try:
        found = transfer_views.task_round(reference, code)
        if found is not None and found[1] == "open":
            # Its waiting task records it (and wakes the transfer), as the UI's form would.
            fields = {"recorded_by": _by(by, reference, task=code), **({"done_on": on} if on else {})}
            import services

            print(services.send_answer(reference, code, fields))
            return
        transfers.mark_action_done(reference, code, _by(by, reference, task=code), _date(on, "on") if on else None)
    except (RuleBroken, transfers.StepRefused, FormError) as exc:
        fail(str(exc))
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    except engine.EngineError as exc:
        fail(f"{reference.upper()}: {exc}", 1)
    print(f"{reference.upper()}: {code} done")


@contextmanager
def _exit_codes(reference: str) -> Iterator[None]:
    """A refused rule exits 2 naming the field, an unknown NSI 3, a server that did not respond 1."""
    from prefect_runs import engine
    from tasks.domain import transfers
    from tasks.domain.decisions import RuleBroken

    try:
        yield
    except (RuleBroken, transfers.StepRefused) as exc:
        fail(str(exc))
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    except engine.EngineError as exc:
        fail(f"{reference.upper()}: {exc}", 1)


@app.command("challenge")
def challenge(
    reference: str,
    concern: str = typer.Option(..., "--concern", help="The concern about risk"),
    role: str = typer.Option("receiving_pp", "--role", help="receiving_pp or receiving_spo"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Raise a challenge about risk before completion (receiving practitioner or SPO). The receiving
    SPO settles it: `record REF challenge-N --outcome uphold|withdraw ...`. Completion waits meanwhile."""
    import services

    boundary.text(concern, "--concern")
    with _exit_codes(reference):
        seq = services.challenge(reference, concern, _by(by, reference, "challenge"), role)
    print(f"{reference.upper()}: challenge-{seq} raised; the receiving SPO settles it with: "
          f"casetransfer record {reference.upper()} challenge-{seq} --outcome uphold|withdraw")  # fmt: skip


@app.command("dispute")
def dispute(
    reference: str,
    grounds: str = typer.Option(..., "--grounds", help="Why the refusal should be overturned"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Transferring SPO: dispute a refusal within the period in config. The head of the receiving PDU
    settles it: `record REF dispute-N --outcome confirm|overturn --notes ...`."""
    import services
    from tasks.domain import transfer_views

    boundary.text(grounds, "--grounds")
    with _exit_codes(reference):
        services.dispute(reference, grounds, _by(by, reference, "dispute"))
    seq = transfer_views.status_of(reference).challenges[-1].seq
    print(f"{reference.upper()}: refusal disputed; the head of the receiving PDU settles it with: "
          f"casetransfer record {reference.upper()} dispute-{seq} --outcome confirm|overturn --notes ...")  # fmt: skip


@app.command("correct")
def correct(
    reference: str,
    step: str,
    done_on: str = typer.Option(..., "--done-on", help="The day the work was really done, YYYY-MM-DD"),
    reason: str = typer.Option(..., "--reason", help="Why the recorded date was wrong"),
    by: str | None = typer.Option(None, "--by"),
) -> None:
    """Correct the day a recorded step or action was done. The history keeps the original entry."""
    from tasks.domain import transfers
    from tasks.domain.decisions import RuleBroken

    boundary.text(reason, "--reason")
    try:
        was = transfers.correct(reference, step.replace("-", "_"), _date(done_on, "done_on"), reason, _by(by, reference, task=step.replace("-", "_")))
    except (RuleBroken, transfers.StepRefused) as exc:
        fail(f"The correction was not accepted; nothing was changed.\n{exc}")
    except transfers.NotFound as exc:
        fail(str(exc), 3)
    print(f"{reference.upper()}: {step} done on {done_on} (was {was})")


@app.command("recover")
def recover(
    stale_after: float | None = typer.Option(None, help="Seconds a run may sit running before it counts as lost"),
    wake_after: float | None = typer.Option(
        None, help="Seconds a transfer's run may wait with a change it has not read before it is woken again"
    ),
) -> None:
    """Reschedule transfers whose flow run lost its process (a killed worker), so they carry on, and
    give back its form to a transfer left waiting without one."""
    from flows.admin import recover_now

    recovered = recover_now(stale_after, wake_after_seconds=wake_after)
    print(f"recovered {len(recovered)}" + (": " + ", ".join(recovered) if recovered else ""))


@app.command("locate")
def locate(
    postcode: list[str] = typer.Argument(..., help="The postcode, quoted or not: LS1 4AP"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Find the receiving PDU, its region and SPOC for a postcode (the National PDU locator)."""
    from tasks.places.locator import LocatorError, format_location, get_locator

    try:
        loc = get_locator().locate(" ".join(postcode))
    except LocatorError as exc:
        fail(str(exc), exc.exit_code)
    print(json.dumps(loc.as_dict()) if as_json else format_location(loc))


app.command("remind")(remind)  # ops/cli_nightly.py, with the other nightly jobs
app.command("amend")(amend)  # ops/cli_changes.py: a transfer that changes after it is raised
app.command("stop-clock")(stop_clock)
app.command("restart-clock")(restart_clock)


@app.command("up-production")
def up_production(
    workers: int = typer.Option(2, help="Process workers serving the casetransfer work pool"),
    port: int = typer.Option(4200, help="Prefect server port"),
    pg: str = typer.Option(
        os.environ.get("CASETRANSFER_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server for both databases (casetransfer_prefect, casetransfer); its database part is ignored",
    ),
    redis: str = typer.Option(
        os.environ.get("CASETRANSFER_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis database that carries Prefect's events between its API servers and services",
    ),
    engine_port: int = typer.Option(0, help="Port of the API server for workers and flow runs (default: --port + 1)"),
    systemd: Path | None = typer.Option(None, help="Write systemd units for the profile into this folder instead of starting it"),
) -> None:
    """The production profile: Prefect on PostgreSQL and Redis (an API server for people, one for
    workers and flow runs, the services in their own process), the store on PostgreSQL, several
    workers. Creates the databases if missing, migrates the store, prints the UI address."""
    from ops.production import bring_up_production, write_systemd_units

    try:
        profile = dict(port=port, workers=workers, pg=pg, say=out.print, redis=redis, engine_port=engine_port or None)
        write_systemd_units(systemd, **profile) if systemd else bring_up_production(**profile)  # units to install, or the processes now
    except (RuntimeError, ValueError) as exc:
        fail(str(exc), 1)


@app.command("down-production")
def down_production() -> None:
    """Stop the Prefect server and workers that `casetransfer up-production` started."""
    from ops.production import take_down_production

    take_down_production(say=out.print)


@app.command("up")
def up(
    port: int = typer.Option(4200, help="Prefect server port"),
    seed_transfers: int = typer.Option(2000, help="Synthetic NSIs for the tracker and reminders demo"),
) -> None:
    """Set everything up on the embedded default: database, Prefect server, deployments, a worker,
    demo transfers waiting at different steps, a tracker and a reminder run. Prints the UI address."""
    from ops.demo import bring_up

    bring_up(port=port, seed_transfers=seed_transfers, say=out.print)


@app.command("down")
def down() -> None:
    """Stop the Prefect server and workers that `casetransfer up` started."""
    from ops.demo import take_down

    take_down(say=out.print)


app.command("tracker")(tracker)  # ops/cli_nightly.py


@app.command("seed")
def seed_store(
    transfers: int = typer.Option(..., "--transfers", help="How many synthetic NSIs to write"),
    seed: int = typer.Option(0, "--seed", help="Same seed, same data"),
    as_of: str | None = typer.Option(None, "--as-of", help="NSIs are raised in the 12 months before this day (default: today)"),
) -> None:
    """Write synthetic NSIs with their actions, step records and histories straight into the store
    (demo and benchmark data; no flow runs)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tasks.demo.seed import SeedExists
    from tasks.demo.seed import seed as write_seed
    from tasks.store.migrate import upgrade

    boundary.count(transfers, "--transfers", "seed_transfers")
    boundary.count(seed, "--seed", "seed")
    day = boundary.as_of(as_of)
    upgrade()
    started = time.perf_counter()
    with Progress(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err.real) as progress:
        bar = progress.add_task("seeding", total=transfers)
        try:
            n = write_seed(transfers, seed, day, progress=lambda done: progress.update(bar, completed=done))
        except SeedExists as exc:
            fail(f"--seed: {str(exc).removeprefix('seed: ')}")
    seconds = time.perf_counter() - started
    print(f"{n} synthetic NSIs written (seed {seed}, raised in the 12 months before {day}) in {seconds:.1f} s")


@app.command("worker")
def worker(
    name: str | None = typer.Option(None, "--name", help="The worker's name in the UI (default: this host and process)"),
    pool: str = typer.Option("casetransfer", "--pool", help="The work pool to serve"),
) -> None:
    """Start a process worker for the pool in the foreground (Ctrl-C stops it), with the settings
    `casetransfer up` gives its workers: among them the flow-run heartbeats that let a dead
    worker's runs be rescheduled by themselves (see the README)."""
    import socket
    import subprocess

    from ops.stack import Stack
    from tasks.settings import ROOT, get_settings

    api = os.environ.get("PREFECT_API_URL") or get_settings().prefect_api_url
    if not answers(api):
        fail(f"no Prefect server answers on {api}: start one with `casetransfer up`, or set PREFECT_API_URL", 1)
    home = Path(os.environ.get("PREFECT_HOME") or get_settings().data_dir / "prefect")
    stack = Stack(home=home, port=0)
    env = stack.worker_env()
    env["PREFECT_API_URL"] = api
    env.pop("PREFECT_UI_URL", None)
    command = stack.worker_command(name or f"{socket.gethostname()}-{os.getpid()}", pool)
    try:
        raise typer.Exit(subprocess.run(command, env=env, cwd=ROOT).returncode)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


from ops.cli_handovers import register; register(app)  # noqa: E402, E702, I001 - the POM-COM handover commands
from ops.cli_import import register as register_import; register_import(app)  # noqa: E402, E702, I001 - the go-live import
from ops.cli_continuity import register as register_continuity; register_continuity(app)  # noqa: E402, E702, I001 - absences, contacts
from ops.cli_status import register as register_status; register_status(app)  # noqa: E402, E702, I001 - status, grant, access-log
from ops.cli_proxy import register as register_proxy; register_proxy(app)  # noqa: E402, E702, I001 - the proxy's local accounts


def main() -> None:
    """The console script: no Python traceback ever reaches a person (ops/boundary.py: unexpected)."""
    try:
        _main()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # settings that do not load, or anything _main let through
        boundary.unexpected(exc)


def _main() -> None:
    from tasks.settings import get_settings

    # Point the CLI at the local stack (`casetransfer up` starts it there) when it is running.
    # When it is not, the nightly jobs still run in-process (Prefect's temporary server) and
    # commands that need the real server say so (prefect_runs.engine.require_server).
    settings = get_settings()
    if "PREFECT_API_URL" not in os.environ and answers(settings.prefect_api_url):
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    os.environ.setdefault("PREFECT_HOME", str(settings.data_dir / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from ops.credential import authenticate_cli

    authenticate_cli()  # the production profile's API servers ask for basic auth
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # httpx is imported by the commands that talk to Prefect; if it never was, this is not its error.
        httpx = sys.modules.get("httpx")
        if httpx is None or not isinstance(exc, httpx.HTTPError):
            boundary.unexpected(exc)  # one line here, the traceback in the log; exit 1
        # Prefect's client has already retried what a busy or restarting server answers (a
        # locked SQLite database answers 503): say so in words, never with a traceback.
        print(
            f"The Prefect server did not answer: {_http_problem(exc)}. Anything this command stored before "
            "that is kept (`casetransfer status` shows it); run the command again in a moment.",
            file=sys.stderr,
        )
        sys.exit(1)


def _http_problem(exc: Any) -> str:
    """A few words for an httpx.HTTPError."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return f"{response.status_code} {response.reason_phrase} for {exc.request.method} {exc.request.url.path}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    main()

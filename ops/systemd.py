"""The production profile as systemd units: `casetransfer up-production --systemd DIR`.

Each process `up-production` would start (the people's API server, the workers' API server, the
services, each worker, and nginx in front with auth_mode local or sso) becomes a unit that systemd starts at boot and again when it fails
(Restart=on-failure, within the same burst limit as ops.supervise). Their CPU shares follow the
niceness the stack gives them (people first, the bookkeeping of steps next, the steps last).

The API credential is never written into a unit: each unit loads the credential file with
`LoadCredential=`, and `python -m ops.systemd exec` reads it from systemd's credentials
directory into the one process's environment, as Prefect expects, then execs the command.

    python -m ops.systemd exec server|people|client -- COMMAND...
        The units' ExecStart: with `server`, also the server side of auth (CSRF on); with
        `people` (the people's API behind the proxy), the credential as the service identity's.
    python -m ops.systemd deploy PORT ENGINE_COMMAND
        The deploy unit (oneshot): the work pool, the deployments and the automations.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ops.stack import Stack, prefect_cmd
from tasks.settings import ROOT, get_settings

CREDENTIAL = "api-auth"  # the name under LoadCredential=, read from $CREDENTIALS_DIRECTORY
# The kernel's CPU weight for each niceness 0..19 (kernel/sched/core.c, sched_prio_to_weight);
# systemd's CPUWeight=100 is the weight of nice 0, so a unit gets weight * 100 / 1024.
_NICE_WEIGHT = [1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15]


def cpu_weight(nice: int) -> int:
    """systemd's CPUWeight= for a process group at this niceness (0..19)."""
    return max(1, round(_NICE_WEIGHT[nice] * 100 / 1024))


@dataclass(frozen=True)
class Unit:
    name: str
    description: str
    command: list[str]
    nice: int = 0
    after: tuple[str, ...] = ()
    oneshot: bool = False
    side: str = "client"  # which side of the credential the process needs: server, people, client or none


def _set_only(env: dict[str, str]) -> dict[str, str]:
    """What a unit's process needs: what the stack sets, and Prefect's and casetransfer's settings
    from this shell (a unit starts from nothing else). Never the credential."""
    secret = {"PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED"}
    ours = {k: v for k, v in env.items() if os.environ.get(k) != v or k.startswith(("PREFECT_", "CASETRANSFER_"))}
    return {k: v for k, v in ours.items() if k not in secret and k != "PWD" and not k.endswith("_AUTH_STRING")}


def units(stack: Stack, workers: int) -> tuple[list[Unit], dict[str, str], dict[str, str]]:
    """The units of the profile `stack` describes, and the environment of its servers and of its
    workers (without the credential)."""
    stack = replace(stack, supervise=False)  # systemd restarts them
    if not (stack.redis_url and stack.engine_port):
        raise ValueError("the systemd units run Prefect's multi-server layout: the stack needs Redis and an engine port")
    server = [*prefect_cmd(), "server"]
    api = "casetransfer-api.service"
    engine = "casetransfer-engine-api.service"
    api_args = ["--host", "127.0.0.1", "--port", str(stack.port), "--no-services"]
    if stack.proxy is None:
        people = Unit(api, "casetransfer: Prefect API and UI for people", [*server, "start", *api_args], 0, side="server")
    else:  # behind nginx: Prefect's app inside the check of who is acting (ops/people_api.py), as Stack starts it
        people = Unit(api, "casetransfer: Prefect API and UI for people, behind the proxy",
                      [sys.executable, "-m", "ops.people_api", *api_args], 0, side="people")  # fmt: skip
    found = [
        people,
        Unit("casetransfer-services.service", "casetransfer: Prefect's services (scheduler, triggers, ...)",
             [*server, "services", "start"], stack.engine_nice, (api,), side="server"),
        Unit(engine, "casetransfer: Prefect API for workers and flow runs", [*server, "start", "--host", "127.0.0.1",
             "--port", str(stack.engine_port), "--no-services"], stack.engine_nice, (api,), side="server"),
        Unit("casetransfer-deploy.service", "casetransfer: register the work pool, deployments and automations",
             [sys.executable, "-m", "ops.systemd", "deploy", str(stack.port), stack.engine_command or ""], 0, (api,),
             oneshot=True),
    ]  # fmt: skip
    for i in range(1, workers + 1):
        name = f"worker-{i}"
        found.append(
            Unit(f"casetransfer-{name}.service", f"casetransfer: process worker {name}", stack.worker_command(name),
                 stack.worker_nice, (engine, "casetransfer-deploy.service"))
        )  # fmt: skip
    if stack.proxy is not None:
        from ops.proxy import nginx_command

        found.append(Unit("casetransfer-proxy.service", "casetransfer: nginx in front (sign-in, TLS)",
                          nginx_command(proxy_conf(stack)), 0, (api,), side="none"))  # fmt: skip
    server_env = _set_only(stack.child_env({**stack.server_env, **stack.messaging_env()}))
    if stack.proxy is not None:
        server_env.update({"CASETRANSFER_PROXY_SECRET_FILE": str(stack.proxy.secret_file), "PREFECT_UI_API_URL": "/api"})
    return found, server_env, _set_only(stack.worker_env())


def proxy_conf(stack: Stack) -> Path:
    assert stack.proxy is not None
    return stack.proxy.folder / "nginx.conf"


def render(unit: Unit, env_file: Path, credential_file: Path) -> str:
    settings = get_settings()
    plain = unit.side == "none"  # nginx: no credential, no environment; its configuration says it all
    wrapped = unit.command if plain else [sys.executable, "-m", "ops.systemd", "exec", unit.side, "--", *unit.command]
    after = " ".join(("network-online.target", "postgresql.service", "redis-server.service", *unit.after))
    lines = [
        "# Written by `casetransfer up-production --systemd`; write them again rather than edit.",
        "[Unit]",
        f"Description={unit.description}",
        f"After={after}",
        f"Wants={' '.join(unit.after) or 'network-online.target'}",
        "PartOf=casetransfer.target",
        f"StartLimitBurst={settings.worker_restart_burst}",
        f"StartLimitIntervalSec={settings.worker_restart_window_seconds:.0f}",
        "",
        "[Service]",
        f"Type={'oneshot' if unit.oneshot else 'simple'}",
        *(["RemainAfterExit=yes"] if unit.oneshot else []),
        f"WorkingDirectory={ROOT}",
        *([] if plain else [f"EnvironmentFile={env_file}", f"LoadCredential={CREDENTIAL}:{credential_file}"]),
        f"ExecStart={shlex.join(wrapped)}",
        *([] if unit.oneshot else ["Restart=on-failure", f"RestartSec={settings.worker_restart_delay_seconds:.0f}"]),
        # Stop the whole group (a worker's runs with it), as Stack.stop does.
        "KillMode=control-group",
        "TimeoutStopSec=30",
        f"Nice={unit.nice}",
        f"CPUWeight={cpu_weight(unit.nice)}",
        "",
        "[Install]",
        "WantedBy=casetransfer.target",
        "",
    ]
    return "\n".join(lines)


def _env_file(env: dict[str, str]) -> str:
    # systemd's EnvironmentFile= takes KEY="value" with backslash escapes inside the quotes.
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f"{k}={quote(v)}\n" for k, v in sorted(env.items()))


def write_units(directory: Path, stack: Stack, workers: int, credential_file: Path) -> list[Path]:
    """Write the units, their environment files and casetransfer.target into `directory`."""
    found, server_env, worker_env = units(stack, workers)
    if stack.proxy is not None:
        from ops.proxy import check_conf, write_conf

        # Written now (secret, certificate, accounts checked), as Stack.start_proxy does at each start.
        check_conf(write_conf(stack.proxy, stack.port))
    directory.mkdir(parents=True, exist_ok=True)
    envs = {"server": directory / "casetransfer-server.env", "client": directory / "casetransfer-worker.env"}
    envs["people"] = envs["none"] = envs["server"]
    envs["server"].write_text(_env_file(server_env))
    envs["client"].write_text(_env_file(worker_env))
    written = list(dict.fromkeys(envs.values()))
    for unit in found:
        path = directory / unit.name
        path.write_text(render(unit, envs[unit.side], credential_file))
        written.append(path)
    target = directory / "casetransfer.target"
    target.write_text(
        "[Unit]\nDescription=casetransfer: the production profile\n"
        f"Wants={' '.join(u.name for u in found)}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    return [*written, target]


def _exec(side: str, command: list[str]) -> None:
    from ops.credential import AUTH_FILE_ENV, api_credential

    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SystemExit("ops.systemd exec: no $CREDENTIALS_DIRECTORY; run under systemd with LoadCredential=")
    os.environ[AUTH_FILE_ENV] = str(Path(directory) / CREDENTIAL)
    auth_string, _ = api_credential(Path(directory) / CREDENTIAL)
    os.environ["PREFECT_API_AUTH_STRING"] = auth_string
    if side in ("server", "people"):
        os.environ["PREFECT_SERVER_CSRF_PROTECTION_ENABLED"] = "true"
    if side == "server":
        os.environ["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    elif side == "people":  # Prefect's own auth off: the people's API checks the service identity itself
        from ops.people_api import SERVICE_AUTH_ENV

        os.environ[SERVICE_AUTH_ENV] = auth_string
    os.execvp(command[0], command)


def main(argv: list[str]) -> None:
    if argv[:1] == ["exec"] and len(argv) > 3 and argv[1] in ("server", "people", "client") and argv[2] == "--":
        _exec(argv[1], argv[3:])
    elif argv[:1] == ["deploy"] and len(argv) == 3:
        # Under `exec client`: the environment file and the credential are in this environment.
        home = Path(os.environ["PREFECT_HOME"])
        Stack(home=home, port=int(argv[1]), engine_command=argv[2] or None, auth_string=os.environ["PREFECT_API_AUTH_STRING"]).deploy()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env bash
# The whole test suite: unit tests, the store on SQLite and PostgreSQL, a real Prefect server
# with the deployments served, a real SMTP server on loopback, real .xlsx files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
# PostgreSQL runs on this kind of machine; start it if it has stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
# So does Redis (the production profile's fault tests run Prefect's multi-server layout on it).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes || true
  fi
fi
ruff check .
# --quick: the inner loop. Unit tests, the store on SQLite and one transfer end to end on a real
# Prefect server (the test marked `quick`); CI runs everything.
if [ "${1:-}" = "--quick" ]; then
  shift
  set -- -m "quick or not (prefect or postgres)" "$@"
fi
# Four workers (pytest-xdist), each stack's tests kept in one of them (tests/conftest.py): the
# tests on a Prefect stack spend most of their time waiting on flow runs, not on the CPU, so three
# embedded stacks and the production profile wait side by side on two cores while the unit and
# store tests fill the gaps. `-n 0` after the script's name runs everything in one process.
python -m pytest -q --durations=15 -n "${CASETRANSFER_TEST_WORKERS:-4}" --dist loadgroup "$@"

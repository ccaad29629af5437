#!/usr/bin/env bash
# One command, a fresh machine: virtual environment, database, Prefect server (embedded
# SQLite), deployments served by a process worker, demo transfers waiting at different steps,
# synthetic data, one tracker run and one reminder run. Prints the Prefect UI address.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
casetransfer up "$@"

#!/usr/bin/env bash
# Regenerate constraints.txt from pyproject.toml with a resolver (uv pip compile): exactly the
# project's dependency tree, test tools included, every package pinned. Pins already in the file
# are kept while they still fit; `scripts/pin.sh --upgrade` moves each to the newest allowed.
# uv lives in a venv of its own (.venv-tools) so it is never one of the project's dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-tools/bin/uv ]; then
  "$PYTHON" -m venv .venv-tools
  .venv-tools/bin/python -m pip install --quiet uv
fi
.venv-tools/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 -o constraints.txt "$@"

"""Reading the project's config files: each version of a file is parsed once per process.

A transfer's flow run is a new process at every waiting step, and most of them read the
timescales, the profile and the closures again. Parsed files are kept by (path, mtime, size), so
an edited file is read afresh and nothing stale can be served; the launcher (ops.launcher)
parses them once before it forks the flow runs. Callers get their own copy to change as they like.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser where PyYAML was built with it (it usually is): about ten times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_parsed: dict[tuple[str, str, int, int], Any] = {}


def _key(kind: str, path: Path) -> tuple[str, str, int, int]:
    stat = path.stat()
    return (kind, str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def read_yaml(path: Path) -> Any:
    """The YAML document in `path` (None for an empty file)."""
    key = _key("yaml", path)
    if key not in _parsed:
        _parsed[key] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a safe loader)
    return copy.deepcopy(_parsed[key])


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV file in `path`, as dicts keyed by its header."""
    key = _key("csv", path)
    if key not in _parsed:
        with path.open(newline="", encoding="utf-8") as fh:
            _parsed[key] = tuple(tuple(row.items()) for row in csv.DictReader(fh))
    return [dict(row) for row in _parsed[key]]


def preload(config_dir: Path) -> int:
    """Parse every YAML and CSV file under `config_dir`; returns how many."""
    count = 0
    for path in sorted(config_dir.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            read_yaml(path)
        elif path.suffix == ".csv":
            read_csv(path)
        else:
            continue
        count += 1
    return count

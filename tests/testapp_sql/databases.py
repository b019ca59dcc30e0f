"""Throwaway databases for the SQL tests: a SQLite file, or a PostgreSQL schema of its own.

PostgreSQL: the server at ``KITCN_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
trust auth). Each database is a new login role with a schema of the same name, which is
first on the role's default search path, so parallel runs on one server never meet.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_ADMIN = os.environ.get("KITCN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / f'app-{uuid.uuid4().hex[:8]}.db'}"


async def postgres_reachable() -> bool:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def postgres_url() -> AsyncIterator[str]:
    """A SQLAlchemy URL whose tables land in a fresh schema, dropped afterwards."""
    name = f"kitcn_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN; CREATE SCHEMA {name} AUTHORIZATION {name}")
        url = make_url(POSTGRES_ADMIN).set(drivername="postgresql+asyncpg", username=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}';"
            f"DROP SCHEMA IF EXISTS {name} CASCADE; DROP ROLE IF EXISTS {name}"
        )
        await admin.close()


@asynccontextmanager
async def database_url(backend: str, directory: Path) -> AsyncIterator[str]:
    """A fresh database of ``backend`` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        yield sqlite_url(directory)
    else:
        async with postgres_url() as url:
            yield url

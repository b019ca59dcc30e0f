"""The store's own tables: a versioned schema and the records of mutation executions.

Layer: SQL store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pydantic_core
from pydantic import TypeAdapter
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .._wire import Intent

#: Version of the tables below; a database written by a newer version is refused.
SCHEMA_VERSION = 1
#: Execution records are kept as long as Temporal keeps the jobs they belong to.
RECORD_RETENTION = timedelta(days=7)

metadata = MetaData()

#: One row per setting of the store; ``schema_version`` says which tables exist.
meta = Table(
    "kitcn_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: One row per committed mutation execution (a job or a direct call), or per direct call
#: that its commit guard found uncommitted (a tombstone: see :data:`ABANDONED`).
executions = Table(
    "kitcn_executions",
    metadata,
    #: The execution's key: the job id, or the direct call's id.
    Column("exec_id", String(1000), primary_key=True),
    #: The mutation's name, or :data:`ABANDONED`.
    Column("name", String(200), nullable=False),
    #: The mutation's output, as JSON.
    Column("output", Text, nullable=False),
    #: Its schedules (jobs with their ids), runtime cron changes and cancels (job ids), as JSON.
    Column("intents", Text, nullable=False),
    #: When it committed, in ms since the epoch (for pruning).
    Column("created_at", BigInteger, nullable=False, index=True),
)

_VERSION_KEY = "schema_version"
#: The ``name`` of a tombstone: a direct call whose commit guard fired before it committed.
#: Not a procedure name (those are dotted identifiers), so no mutation's record reads as one.
ABANDONED = "!abandoned"
_intents: TypeAdapter[list[Intent]] = TypeAdapter(list[Intent])


class SchemaVersionError(RuntimeError):
    """The database holds kitcn tables of a newer schema version than this package knows."""


@dataclass(frozen=True)
class Record:
    """What a committed execution left behind: its output and its schedules, cron changes and cancels.

    ``abandoned``: a tombstone, not a result: the execution never committed, and now never will.
    """

    output: Any
    intents: list[Intent]
    abandoned: bool = False


async def ensure_schema(conn: AsyncConnection) -> None:
    """Create the store's tables if missing and check their version, in ``conn``'s transaction.

    The caller serialises concurrent first uses: on SQLite the transaction holds the write
    lock; on PostgreSQL an advisory lock (per schema) is taken here.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('kitcn_temporal.sql:' || current_schema()))"))
    await conn.run_sync(metadata.create_all)
    found = (await conn.execute(select(meta.c.value).where(meta.c.key == _VERSION_KEY))).scalar()
    if found is None:
        await conn.execute(insert(meta).values(key=_VERSION_KEY, value=str(SCHEMA_VERSION)))
    elif int(found) > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database's kitcn tables are at schema version {found}, newer than the "
            f"version {SCHEMA_VERSION} this kitcn-temporal supports: upgrade kitcn-temporal"
        )
    # Older versions would be migrated here; version 1 is the first.


async def find_record(session: AsyncSession, exec_id: str) -> Record | None:
    """The record of execution ``exec_id``, or ``None`` if it never committed."""
    columns = (executions.c.name, executions.c.output, executions.c.intents)
    row = (await session.execute(select(*columns).where(executions.c.exec_id == exec_id))).first()
    if row is None:
        return None
    return Record(json.loads(row.output), _intents.validate_json(row.intents), abandoned=row.name == ABANDONED)


async def write_record(
    session: AsyncSession, exec_id: str, name: str, output: Any, intents: list[Intent], now_ms: int
) -> None:
    """Record execution ``exec_id`` in ``session``'s transaction."""
    await session.execute(
        insert(executions).values(
            exec_id=exec_id,
            name=name,
            output=pydantic_core.to_json(output).decode(),
            intents=_intents.dump_json(intents).decode(),
            created_at=now_ms,
        )
    )


async def write_tombstone(session: AsyncSession, exec_id: str, now_ms: int) -> None:
    """Record that execution ``exec_id`` never committed: a later commit of it fails on the key."""
    await write_record(session, exec_id, ABANDONED, None, [], now_ms)


async def prune(conn: AsyncConnection, before_ms: int) -> int:
    """Delete the records created before ``before_ms``; returns how many went."""
    result = await conn.execute(delete(executions).where(executions.c.created_at < before_ms))
    return int(result.rowcount)

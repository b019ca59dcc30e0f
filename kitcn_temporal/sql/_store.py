"""``Store``: one transaction per mutation, committed together with the record of it.

Layer: SQL store: commits an execution unit's buffer with the mutation's writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from .._errors import CRPCError
from .._wire import Intent, now_ms
from . import _schema
from ._schema import RECORD_RETENTION

logger = logging.getLogger("kitcn_temporal.sql")


class Unit(Protocol):
    """What the store needs of an execution unit (``kitcn_temporal.jobs``' ``Unit``, which
    sits above this folder): its id, its buffer, the session it runs in and its pre-commit hook."""

    exec_id: str
    intents: list[Intent]
    db: AsyncSession | None
    before_commit: Callable[[], Awaitable[None]] | None


#: TEST-ONLY. Called as ``hook(exec_id, output)`` right after a mutation's transaction
#: commits, before its jobs start (the crash tests kill the worker, or a direct call's
#: producer, here).
AFTER_COMMIT_TEST_HOOKS: list[Callable[[str, Any], object]] = []

#: The async driver used for each supported database.
_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "postgres": "asyncpg"}
#: How long a SQLite writer waits for the write lock before the attempt counts as transient.
_SQLITE_BUSY_TIMEOUT_S = 20.0
#: Old records are deleted at most this often per store.
_PRUNE_EVERY_S = 3600.0
#: PostgreSQL: serialization_failure, deadlock_detected; classes 08 (connection exception)
#: and 57P (server shutting down or starting).
_PG_TRANSIENT_STATES = ("40001", "40P01")
_PG_TRANSIENT_CLASSES = ("08", "57P")
#: SQLite primary result codes SQLITE_BUSY and SQLITE_LOCKED.
_SQLITE_BUSY_CODES = (5, 6)


class ConcurrentAttemptError(RuntimeError):
    """Two attempts of one execution ran at once and the other committed first (transient)."""


class AbandonedCommitError(CRPCError):
    """A direct call's commit guard fired before the call committed: it never will.

    The guard found no record of the call and left a tombstone in its place, so the
    call's own commit failed on the record's key: nothing it wrote or scheduled stands.
    """

    def __init__(self, name: str, exec_id: str) -> None:
        super().__init__(
            "TIMEOUT",
            f"{name} did not commit before its commit guard fired ({exec_id}): it was rolled "
            "back and schedules nothing; call it again (or raise App(commit_guard_delay=...))",
        )


class Store:
    """The app's SQL database: ``ctx.db`` for mutations and queries, and exactly-once records.

    :param database: a SQLAlchemy URL: ``sqlite+aiosqlite:///path.db`` (the embedded
        default; ``sqlite:///`` works too) or ``postgresql+asyncpg://user@host/db``.

    Mutations run in one transaction each: SQLite ``BEGIN IMMEDIATE`` (writers queue up
    instead of failing on lock upgrade) and PostgreSQL ``SERIALIZABLE``. Queries run in a
    read-only transaction. The store's own tables (``kitcn_meta``, ``kitcn_executions``)
    are created on first use; SQLite databases are switched to WAL journaling.
    """

    def __init__(self, database: str) -> None:
        self.url = _async_url(database)
        self.dialect = self.url.get_backend_name()
        try:
            if self.dialect == "sqlite":
                writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", wal=True)
                reader = _sqlite_engine(self.url, begin="BEGIN", pragmas=("PRAGMA query_only=ON",))
                #: The engine (and connection pool) behind mutation sessions.
                self.engine: AsyncEngine = writer
                self._schema_engine = writer
            else:
                self.engine = create_async_engine(self.url, pool_pre_ping=True)
                writer = self.engine.execution_options(isolation_level="SERIALIZABLE")
                reader = self.engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                # READ COMMITTED: a first use that waited for another's schema lock sees its tables.
                self._schema_engine = self.engine
        except ImportError as err:
            raise ImportError(
                f"the database driver for {self.dialect} is missing ({err}): "
                "install the sql extra, pip install 'kitcn-temporal[sql]'"
            ) from err
        self._reader = reader
        self._write_sessions = async_sessionmaker(writer, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(reader, expire_on_commit=False)
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._next_prune = 0.0

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    async def run_mutation(self, unit: Unit, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run mutation ``name`` once for ``unit.exec_id`` and return its output.

        If an earlier attempt committed, restore its schedules/cancels into ``unit.intents``
        and return its output without running ``fn``. Otherwise run ``fn`` with ``unit.db``
        set to the session and commit its writes together with the record of its output
        and ``unit.intents``. The record's primary key makes a second commit impossible.
        Right before committing a mutation that has intents, ``unit.before_commit`` is
        awaited (a direct call arms its commit guard there).

        One attempt: whoever runs the mutation retries it (Temporal for a job, the calling
        process for a mutation called from an action or directly from a client).
        """
        await self._ensure_ready()
        await self._prune_if_due()
        # Looked up outside the mutation's transaction: under SERIALIZABLE, reading the
        # record table would make every concurrent mutation a conflict (predicate locks).
        record = await self._find(unit.exec_id)
        if record is not None and record.abandoned:
            raise AbandonedCommitError(name, unit.exec_id)
        if record is not None:
            # An earlier attempt committed: its writes stand, its jobs start under their ids.
            unit.intents = list(record.intents)
            return record.output
        async with self._write_sessions() as session, session.begin():
            unit.db = session
            try:
                output = await fn()
                await session.flush()  # the handler's own constraint errors surface as its errors
            finally:
                unit.db = None
            if unit.intents and unit.before_commit is not None:
                await unit.before_commit()
            try:
                await _schema.write_record(session, unit.exec_id, name, output, unit.intents, now_ms())
            except sa_exc.IntegrityError as err:
                raise ConcurrentAttemptError(
                    f"another attempt of {name} ({unit.exec_id}) committed first: this one is "
                    "rolled back and a retry returns that attempt's outcome"
                ) from err
        for hook in AFTER_COMMIT_TEST_HOOKS:
            hook(unit.exec_id, output)
        return output

    async def recover(self, unit: Unit) -> tuple[bool, Any]:
        """Whether an attempt of ``unit.exec_id`` committed, and its output; its intents go to ``unit``.

        Runs no handler: for a mutation job canceled while it retried, whose last attempt may
        have committed before its worker was lost.
        """
        await self._ensure_ready()
        async with self._read_sessions() as reader, reader.begin():
            record = await _schema.find_record(reader, unit.exec_id)
        if record is None:
            return False, None
        unit.intents = list(record.intents)
        return True, record.output

    async def abandon_unless_committed(self, exec_id: str) -> _schema.Record | None:
        """The record of ``exec_id`` if it committed; if not, a tombstone so that it never will.

        For a direct call's commit guard: ``None`` means the call never committed (and a
        late commit of it now fails on the record's key, as a concurrent attempt would).
        """
        await self._ensure_ready()
        try:
            async with self._write_sessions() as session, session.begin():
                await _schema.write_tombstone(session, exec_id, now_ms())
            return None
        except sa_exc.IntegrityError:
            pass  # a record is there already: the call committed (or a tombstone was written)
        record = await self._find(exec_id)
        return None if record is None or record.abandoned else record

    async def _find(self, exec_id: str) -> _schema.Record | None:
        async with self._read_sessions() as reader, reader.begin():
            return await _schema.find_record(reader, exec_id)

    @asynccontextmanager
    async def read_session(self, unit: Unit) -> AsyncIterator[AsyncSession]:
        """A read-only transaction as ``unit.db`` while the block runs (a query's ``ctx.db``)."""
        await self._ensure_ready()
        async with self._read_sessions() as session, session.begin():
            unit.db = session
            try:
                yield session
            finally:
                unit.db = None

    def is_transient(self, err: BaseException) -> bool:
        """Whether a retry may succeed: serialization conflicts, deadlocks, busy locks, lost connections."""
        if isinstance(
            err, (ConcurrentAttemptError, ConnectionError, TimeoutError, sa_exc.DisconnectionError, sa_exc.TimeoutError)
        ):
            return True  # another attempt won, the server is unreachable, or no pooled connection came free
        if not isinstance(err, sa_exc.DBAPIError):
            return False
        orig = err.orig
        if err.connection_invalidated or isinstance(orig, (ConnectionError, TimeoutError)):
            return True
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if isinstance(state, str):
            return state in _PG_TRANSIENT_STATES or state.startswith(_PG_TRANSIENT_CLASSES)
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in _SQLITE_BUSY_CODES
        return "database is locked" in str(orig) or "connection is closed" in str(orig)

    async def prune(self, older_than: float | None = None) -> int:
        """Delete execution records older than ``older_than`` seconds (default: 7 days).

        Runs on its own at most once an hour (with a mutation); returns how many went.
        """
        age_ms = int((RECORD_RETENTION.total_seconds() if older_than is None else older_than) * 1000)
        await self._ensure_ready()
        async with self._schema_engine.begin() as conn:
            return await _schema.prune(conn, now_ms() - age_ms)

    async def create_all(self, metadata: MetaData) -> None:
        """Create ``metadata``'s tables that do not exist yet (for development and tests;
        production databases are better served by migrations)."""
        await self._ensure_ready()
        async with self._schema_engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection (call it when the worker stops)."""
        await self.engine.dispose()
        if self._reader.sync_engine.pool is not self.engine.sync_engine.pool:
            await self._reader.dispose()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            _make_sqlite_dir(self.url)
            conn: AsyncConnection
            async with self._schema_engine.begin() as conn:
                await _schema.ensure_schema(conn)
            self._ready = True

    async def _prune_if_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY_S
        try:
            # Its own short transaction: a range delete inside a SERIALIZABLE mutation
            # would make it conflict with every concurrent one.
            pruned = await self.prune()
        except Exception as err:  # pruning is housekeeping: never fail a mutation over it
            logger.warning("could not prune old execution records: %s", err)
            return
        if pruned:
            logger.info("pruned %d execution records older than %s", pruned, RECORD_RETENTION)


def _async_url(database: str) -> URL:
    """``database`` as a URL with its async driver; ValueError for anything unsupported."""
    if not isinstance(database, str):
        raise TypeError(f"database must be a SQLAlchemy URL string, not {type(database).__name__}")
    try:
        url = make_url(database)
    except sa_exc.ArgumentError:
        raise ValueError(
            f"database {database!r} is not a SQLAlchemy URL: expected e.g. "
            "'sqlite+aiosqlite:///app.db' or 'postgresql+asyncpg://user@host/db'"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    wanted = _DRIVERS.get(backend)
    if wanted is None or driver not in ("", wanted):
        raise ValueError(
            f"database {url.render_as_string(hide_password=True)!r} is not supported: "
            "kitcn_temporal.sql runs on sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError(
            "database is an in-memory SQLite database, which each connection sees empty and "
            "which dies with the worker: give a file, e.g. 'sqlite+aiosqlite:///.kitcn/app.db'"
        )
    backend = "postgresql" if backend == "postgres" else backend
    return url.set(drivername=f"{backend}+{wanted}")


def _sqlite_engine(url: URL, *, begin: str, wal: bool = False, pragmas: tuple[str, ...] = ()) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own BEGIN is deferred and skipped for SELECTs: we emit ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                _switch_to_wal(cursor)
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (it stays so), tolerating connections opened at once.

    Changing the journal mode needs the file to itself and does not wait on SQLite's busy
    timeout: when several connections first open a new file together, all but one see
    "database is locked" while the first switches it, then find it switched.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        if str(mode).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as err:  # sqlite3.OperationalError: another connection is switching it
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _make_sqlite_dir(url: URL) -> None:
    """SQLite creates the database file, not its directory (``.kitcn/app.db``)."""
    path = url.database
    if url.get_backend_name() == "sqlite" and path and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)

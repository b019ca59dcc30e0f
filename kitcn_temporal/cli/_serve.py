"""The long-running commands: ``worker`` and ``dev``, stopped cleanly by SIGINT/SIGTERM.

Layer: command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from .._app import App
from .._plugin import connect_when_ready
from ..ops._codec_server import CodecServer, serve_codec
from ..ops._devserver import DevServer, DevServerError, port_open, start_dev_server
from ..ops._encryption import KEYS_ENV, EncryptionCodec, codec_for
from ..ops._metrics import metrics_runtime
from ..ops._setup import SetupError, setup_namespace
from ._connect import CliError, connect, connect_config, connection_reason, load_app, load_crons
from ._crons import require_crons, sync_crons

#: Where ``dev`` keeps the server's SQLite file and log, relative to the current directory.
DEV_DIR = Path(".kitcn")
DEV_HOST = "127.0.0.1"
#: How long ``dev`` waits for a freshly started server to answer.
DEV_CONNECT_TIMEOUT = 30.0


class Stopper:
    """SIGINT/SIGTERM: the first stops gracefully (or aborts start-up), a second one forces."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.serving = False
        self._task = asyncio.current_task()
        self._signals = 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1 and self.serving:
            print("stopping: waiting for running procedures (signal again to force)", file=sys.stderr, flush=True)
            self.requested.set()
        elif self._task is not None:
            self._task.cancel()  # start-up is abandoned, or a second signal forces the stop


async def worker(args: argparse.Namespace) -> int:
    """``worker``: serve the app's task queue until SIGINT/SIGTERM."""
    configure_logging(args.log_level)
    app = load_app(args)
    crons = require_crons(load_crons(args.crons), args.crons)
    stopper = Stopper()
    config = {**connect_config(args), **_runtime_option(args)}
    client = await connect(config, app)  # an unknown namespace fails here, in one line
    if crons is not None:
        print(await sync_crons(crons, client, app), flush=True)
    await serve(client, app, stopper, args.graceful_timeout, _metrics_banner(args), slots=WorkerSlots.of(args))
    return 0


async def dev(args: argparse.Namespace) -> int:
    """``dev``: the embedded dev server, namespace setup, crons and a worker, in one process."""
    configure_logging(args.log_level)
    try:
        DEV_DIR.mkdir(exist_ok=True)  # before the app loads: its database may live there too
    except OSError as err:
        raise CliError(f"cannot create {DEV_DIR}/ in the current directory: {err.strerror}") from None
    app = load_app(args)
    crons = require_crons(load_crons(args.crons), args.crons)
    stopper = Stopper()
    address = f"{DEV_HOST}:{args.port}"
    ui_port = args.ui_port or args.port + 1000
    server: DevServer | None = None
    codec = _codec_server_for_ui(args.codec_port or ui_port + 1, ui_port)
    try:
        if port_open(DEV_HOST, args.port):
            print(f"reusing the Temporal server already listening on {address}", flush=True)
            if codec is not None:
                print(f"note: its UI decodes only if it was started with --ui-codec-endpoint {codec.url}", flush=True)
        else:
            extra = ("--ui-codec-endpoint", codec.url) if codec is not None else ()
            server = await _start_server(args.port, ui_port, extra)
            print(f"started the Temporal dev server on {address} (data and log in {DEV_DIR}/)", flush=True)
        client = await _connect_when_ready(address, app, **_runtime_option(args))
        try:
            await setup_namespace(client)
        except SetupError as err:
            raise CliError(str(err)) from None
        if crons is not None:
            print(await sync_crons(crons, client, app), flush=True)
        ui = f"http://{DEV_HOST}:{ui_port}" if port_open(DEV_HOST, ui_port) else f"none (nothing on port {ui_port})"
        await serve(
            client,
            app,
            stopper,
            args.graceful_timeout,
            f"Temporal UI: {ui}\n{_metrics_banner(args)}",
            slots=WorkerSlots.of(args),
        )
    finally:
        if server is not None:
            server.stop()
            print("stopped the Temporal dev server", file=sys.stderr, flush=True)
        if codec is not None:
            codec.close()
    return 0


async def codec_server(args: argparse.Namespace) -> int:
    """``codec-server``: Temporal's remote codec endpoint for the keys of KITCN_ENCRYPTION_KEYS."""
    codec = _codec_from_env()
    if codec is None:
        raise CliError(f"no encryption keys: set {KEYS_ENV} (comma-separated base64 keys, newest first)")
    stopper = Stopper()
    origins = args.ui_origin or ["http://localhost:8233", "http://127.0.0.1:8233"]
    server = _serve_codec(codec, args.host, args.port, origins)
    stopper.serving = True
    print(
        f"codec server on {server.url} for keys {', '.join(codec.key_ids)}, allowing {', '.join(origins)}; "
        f"point the UI at it (temporal server start-dev --ui-codec-endpoint {server.url}, or the UI's "
        "Codec Server settings); Ctrl-C stops it",
        flush=True,
    )
    try:
        await stopper.requested.wait()
    finally:
        server.close()
    return 0


def _codec_from_env() -> EncryptionCodec | None:
    try:
        return codec_for(None)
    except (ValueError, ImportError) as err:
        raise CliError(str(err)) from None


def _serve_codec(codec: EncryptionCodec, host: str, port: int, origins: list[str]) -> CodecServer:
    try:
        return serve_codec(codec, host=host, port=port, origins=origins)
    except OSError as err:
        raise CliError(f"cannot serve the codec endpoint on {host}:{port}: {err.strerror}") from None


def _codec_server_for_ui(port: int, ui_port: int) -> CodecServer | None:
    """With encryption keys configured, the codec endpoint ``dev``'s UI decodes with."""
    codec = _codec_from_env()
    if codec is None:
        return None
    origins = [f"http://{DEV_HOST}:{ui_port}", f"http://localhost:{ui_port}"]
    server = _serve_codec(codec, DEV_HOST, port, origins)
    print(f"codec server on {server.url} (the UI decodes encrypted payloads with it)", flush=True)
    return server


@dataclass(frozen=True)
class WorkerSlots:
    """A worker's slot counts from the command line; ``None`` keeps the default."""

    workflow_tasks: int | None = None
    activities: int | None = None
    local_activities: int | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> WorkerSlots:
        return cls(args.max_workflow_tasks, args.max_activities, args.max_local_activities)


async def serve(
    client: Client, app: App, stopper: Stopper, graceful_s: float, banner: str, *, slots: WorkerSlots = WorkerSlots()
) -> None:
    """Run a worker for ``app`` until the stopper fires, then shut it down gracefully.

    :param slots: the worker's slot counts; unset ones keep the plugin's and the SDK's defaults.
    """
    worker = Worker(
        client,
        task_queue=app.task_queue,
        # Running procedures get this long to finish once a stop is requested.
        graceful_shutdown_timeout=timedelta(seconds=graceful_s),
        max_concurrent_workflow_tasks=slots.workflow_tasks,
        max_concurrent_activities=slots.activities,
        max_concurrent_local_activities=slots.local_activities,
    )
    running = asyncio.create_task(worker.run())
    stopper.serving = True
    print(
        f"{banner}worker serving {len(app.procedures)} procedures on task queue {app.task_queue!r} "
        f"at {client.service_client.config.target_host} (namespace {client.namespace!r}); Ctrl-C stops it",
        flush=True,
    )
    stop = asyncio.create_task(stopper.requested.wait())
    try:
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not running.done():
            await worker.shutdown()
            await asyncio.wait([running])  # plugins finish after the worker (its side workers)
        if app.store is not None:  # close the app database's connections once nothing runs
            await app.store.dispose()
    try:
        running.result()
    except Exception as err:  # a fatal worker error: unknown namespace, server gone for good
        raise CliError(f"the worker stopped: {connection_reason(err)}") from None
    if not stopper.requested.is_set():
        raise CliError("the worker stopped unexpectedly")
    print("worker stopped", file=sys.stderr, flush=True)


def configure_logging(level: str) -> None:
    """Timestamped log lines from the worker, the SDK and procedures' ``ctx.logger``."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _start_server(port: int, ui_port: int, extra_args: tuple[str, ...]) -> DevServer:
    loop = asyncio.get_running_loop()
    starting = loop.run_in_executor(
        None,
        lambda: start_dev_server(
            db_file=DEV_DIR / "temporal.db",
            port=port,
            ui=True,
            ui_port=ui_port,
            log_path=DEV_DIR / "temporal.log",
            extra_args=extra_args,
        ),
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Interrupted while the server starts: wait for it, then stop it, so none is left behind.
        with contextlib.suppress(Exception):
            (await starting).stop()
        raise
    except DevServerError as err:
        raise CliError(str(err)) from None


def _runtime_option(args: argparse.Namespace) -> dict[str, Runtime]:
    """``{"runtime": ...}`` serving Prometheus metrics when ``--metrics-port`` is given."""
    if args.metrics_port is None:
        return {}
    try:
        return {"runtime": metrics_runtime(args.metrics_port, args.metrics_host)}
    except Exception as err:  # the SDK's core cannot bind the address
        raise CliError(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {err}") from None


def _metrics_banner(args: argparse.Namespace) -> str:
    if args.metrics_port is None:
        return ""
    return f"metrics: http://{args.metrics_host}:{args.metrics_port}/metrics\n"


async def _connect_when_ready(address: str, app: App, **options: Any) -> Client:
    try:
        return await connect_when_ready(address, app, timeout=DEV_CONNECT_TIMEOUT, **options)
    except RuntimeError as err:
        raise CliError(f"cannot reach Temporal at {address}: {connection_reason(err)}") from None

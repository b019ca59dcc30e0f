"""A worker process for a test app, to be killed (SIGKILL) or stopped (SIGTERM) by the tests.

``python workerproc.py --app PACKAGE --address HOST:PORT --queue Q [--database URL]``
prints ``ready <pid>`` once it polls. Two ways to die right after a mutation commits (committed,
not yet reported to Temporal, its jobs not yet started), as on a power cut:

* ``--kill-after-commits N``: after the commits, from the N-th on, of a mutation whose output
  is a string (the fault app's mutations that schedule return the new job's id); it prints
  ``dying after <exec id>`` first;
* ``--kill-after-token TOK``: after the commit of a mutation whose output is a dict with
  ``"token": TOK`` (it prints ``dying after <exec id>`` first too).

SIGTERM stops it gracefully (running procedures get ``--graceful`` seconds to finish).

``--call NAME --args JSON``: a producer instead of a worker: it makes one direct call through
a ``KitcnClient`` (a mutation runs in this process: the kill options apply to it), prints
``output <json>`` and exits. ``--guard-delay S`` sets the app's ``commit_guard_delay``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The repository (kitcn_temporal, the reference app), the tests' apps, the fault app.
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE / "faults")]


async def main(args: argparse.Namespace) -> int:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from kitcn_temporal import App, KitcnClient, KitcnPlugin
    from kitcn_temporal.sql._store import AFTER_COMMIT_TEST_HOOKS

    app = App.discover(
        args.app,
        task_queue=args.queue,
        database=args.database,
        action_heartbeat_timeout=timedelta(seconds=args.heartbeat),
        unknown_procedure_grace=timedelta(seconds=args.unknown_grace),
        commit_guard_delay=timedelta(seconds=args.guard_delay),
    )
    commits = 0

    def die_after_commit(exec_id: str, output: object) -> None:
        nonlocal commits
        commits += 1
        if args.kill_after_commits and commits >= args.kill_after_commits and isinstance(output, str):
            print(f"dying after {exec_id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if args.kill_after_token and isinstance(output, dict) and output.get("token") == args.kill_after_token:
            print(f"dying after {exec_id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    AFTER_COMMIT_TEST_HOOKS.append(die_after_commit)
    client = await Client.connect(args.address, plugins=[KitcnPlugin(app)])
    if args.call:
        output = await KitcnClient(client, app).run(args.call, json.loads(args.args))
        print(f"output {json.dumps(output, default=str)}", flush=True)
        return 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        client,
        task_queue=app.task_queue,
        graceful_shutdown_timeout=timedelta(seconds=args.graceful),
    )
    async with worker:
        print(f"ready {os.getpid()}", flush=True)
        await stop.wait()
        print("stopping", flush=True)
    if app.store is not None:
        await app.store.dispose()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--database")
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--graceful", type=float, default=0.0)
    parser.add_argument("--unknown-grace", type=float, default=600.0)
    parser.add_argument("--kill-after-commits", type=int, default=0)
    parser.add_argument("--kill-after-token")
    parser.add_argument("--call")
    parser.add_argument("--args", default="{}")
    parser.add_argument("--guard-delay", type=float, default=30.0)
    code = asyncio.run(main(parser.parse_args()))
    # The SDK can abort the interpreter at exit (sdk-python#300): leave at once.
    sys.stdout.flush()
    os._exit(code)

"""``python -m bench.hotpath [--quick] [--jobs N] [--rounds R]``: where a job's CPU goes, kitcn
against the hand-tuned temporalio shape, producer and workers in one process.

Three variants side by side in rounds (:class:`bench.measure.Rounds`), each ``N`` ``schedule.now``
jobs run to completion:

* ``kitcn``: a worker as ``KitcnPlugin`` builds it (twice as many workflow task slots as local
  activity slots);
* ``kitcn_sdk_slots``: the same app on a worker with the SDK's 100 workflow task slots (what
  kitcn built before);
* ``tuned``: the hand-tuned temporalio shape (``bench.tuned``) on a plain temporalio client.

For each: jobs per second, this process's CPU per job (producer and workers), the server's CPU
per job (``/proc``), and the workflow tasks per job that went through matching (the starts that
were not eager), from the server's own metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from bench import measure
from bench.costs import cpu_s, server_counters
from bench.tuned import TunedJob, tuned_noop
from kitcn_temporal import App, KitcnClient, setup_namespace
from kitcn_temporal._plugin import connect_when_ready

_MATCHED = ("matching_requests", "AddWorkflowTask")


async def run(jobs: int, rounds: int, settle_s: float) -> dict[str, Any]:
    server, metrics_port, _ = measure.start_server("kitcn-hotpath-")
    try:
        app = App.discover("bench.app", task_queue=f"hot-kitcn-{uuid.uuid4().hex[:6]}")
        client = await connect_when_ready(server.address, app)
        await setup_namespace(client)
        plain = await Client.connect(server.address)
        kitcn = KitcnClient(client, app)
        before = KitcnClient(client, app, task_queue=f"hot-sdk-slots-{uuid.uuid4().hex[:6]}")
        tuned_queue = f"hot-tuned-{uuid.uuid4().hex[:6]}"

        def counters() -> dict[tuple[str, str], float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                return server_counters(response.read().decode())

        samples: dict[str, list[dict[str, float]]] = {}

        def measured(name: str, go: Callable[[], Awaitable[float]]) -> Callable[[], Awaitable[float]]:
            async def once() -> float:
                seen, cpu, server_cpu = counters(), time.process_time(), cpu_s(server.process.pid)
                rate = await go()
                cpu, server_cpu = time.process_time() - cpu, cpu_s(server.process.pid) - server_cpu
                await asyncio.sleep(1.0)  # the server's metrics lag a moment
                matched = counters().get(_MATCHED, 0.0) - seen.get(_MATCHED, 0.0)
                samples.setdefault(name, []).append(
                    {
                        "process_cpu_ms_per_job": cpu * 1000 / jobs,
                        "server_cpu_ms_per_job": server_cpu * 1000 / jobs,
                        "matched_workflow_tasks_per_job": matched / jobs,
                    }
                )
                return rate

            return once

        async with (
            Worker(client, task_queue=app.task_queue),
            Worker(client, task_queue=before.task_queue, max_concurrent_workflow_tasks=100),
            Worker(plain, task_queue=tuned_queue, workflows=[TunedJob], activities=[tuned_noop]),
        ):
            await measure.e2e_kitcn(kitcn, 10)  # warm every path up
            await measure.e2e_kitcn(before, 10)
            await measure.e2e_tuned(plain, tuned_queue, 10)
            result = await measure.Rounds.measure(
                rounds,
                {
                    "kitcn": measured("kitcn", lambda: measure.e2e_kitcn(kitcn, jobs)),
                    "kitcn_sdk_slots": measured("kitcn_sdk_slots", lambda: measure.e2e_kitcn(before, jobs)),
                    "tuned": measured("tuned", lambda: measure.e2e_tuned(plain, tuned_queue, jobs)),
                },
                settle_s,
            )
        figures: dict[str, Any] = {"jobs": jobs, "rounds": rounds, "machine": measure.machine_info("")}
        for name, rows in samples.items():
            figures[f"jobs_per_s_{name}"] = result.rate(name)
            for key in rows[0]:
                figures[f"{key}_{name}"] = statistics.median(row[key] for row in rows)
        figures["ratio_kitcn_tuned"] = result.ratio("kitcn", "tuned")
        figures["ratio_kitcn_sdk_slots_tuned"] = result.ratio("kitcn_sdk_slots", "tuned")
        figures["rounds_jobs_per_s"] = result.rates
        return figures
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmark runs")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per run (default 1000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds (default 6, a multiple of 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    jobs, rounds, settle = (30, 1, 0.2) if args.quick else (args.jobs, args.rounds, measure.SETTLE_S)
    code = 0
    try:
        figures = asyncio.run(run(jobs, rounds, settle))
        for key, value in figures.items():
            if isinstance(value, float):
                print(f"{key:48} {value:.2f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    except Exception as err:  # one line, then a non-zero exit
        print(f"bench.hotpath: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    os._exit(code)  # the SDK's runtime can abort the interpreter at exit


if __name__ == "__main__":
    main()

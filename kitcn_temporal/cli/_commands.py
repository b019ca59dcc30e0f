"""The commands that talk to Temporal and return: setup, run, schedule, jobs.

Layer: command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from .._client import KitcnClient
from ..capacity._slots import is_paused
from ..jobs._handles import Jobs
from ..jobs._status import MAX_PAGE_SIZE, PaginationResult, ScheduledFunction, SystemTable, jobs_query
from ..ops._setup import RETENTION, SEARCH_ATTRIBUTES, SetupError, setup_namespace
from ._capacity import paused_note
from ._connect import CliError, connect, connect_config, load_app
from ._output import job_details, job_json, jobs_table, print_json
from ._parse import UsageError, parse_args_json, parse_duration_ms, parse_time_ms

#: How many rows ``jobs list`` shows unless ``--limit`` or ``--all`` says otherwise.
DEFAULT_LIMIT = 100
#: How long ``jobs cancel`` waits for a pending job to record ``canceled``.
CANCEL_WAIT = 10.0


async def setup(args: argparse.Namespace) -> int:
    """``setup``: search attributes and 7-day retention on the namespace."""
    client = await connect(connect_config(args), None)
    try:
        report = await setup_namespace(client)
    except SetupError as err:  # an attribute exists with another type
        raise CliError(str(err)) from None
    days = RETENTION.days
    if args.json:
        print_json(
            {
                "namespace": report.namespace,
                "addedSearchAttributes": report.added_search_attributes,
                "retentionChanged": report.retention_changed,
                "retentionDays": days,
            }
        )
        return 0
    added = ", ".join(report.added_search_attributes)
    print(f"namespace {report.namespace!r} at {client.service_client.config.target_host}:")
    print(f"  search attributes: {', '.join(SEARCH_ATTRIBUTES)}" + (f" (added {added})" if added else " (present)"))
    print(f"  retention: {days} days" + (" (set)" if report.retention_changed else " (unchanged)"))
    return 0


async def run(args: argparse.Namespace) -> int:
    """``run NAME --args JSON``: call a procedure and print its output (as JSON).

    A query or mutation runs in this process (with the app's database); an action on a worker.
    """
    app = load_app(args)
    payload = parse_args_json(args.args)
    proc = app.get(args.name)  # an unknown name fails before anything connects
    client = await connect(connect_config(args), app)
    if proc.kind == "action":
        await _require_worker(client, app.task_queue)
    try:
        result = await KitcnClient(client, app).run(args.name, payload)
    finally:
        if app.store is not None:
            await app.store.dispose()
    if isinstance(result, str) and not args.json:
        print(result)  # a plain string reads better unquoted
    else:
        print_json(result)
    return 0


async def schedule(args: argparse.Namespace) -> int:
    """``schedule NAME (--after D | --at T) [--key K] [--priority N] --args JSON``: schedule, print the job."""
    app = load_app(args)
    payload = parse_args_json(args.args)
    after = parse_duration_ms(args.after) if args.after is not None else None
    at = parse_time_ms(args.at) if args.at is not None else None
    app.get(args.name)
    client = await connect(connect_config(args), app)
    scheduler = KitcnClient(client, app).scheduler
    flow = {"key": args.key, "priority": args.priority}
    if after is not None:
        job_id = await scheduler.run_after(after, args.name, payload, **flow)
    else:
        assert at is not None  # argparse requires one of --after / --at
        job_id = await scheduler.run_at(at, args.name, payload, **flow)
    job = await SystemTable(client).get(job_id)
    if job is None:  # describe is strongly consistent: only a concurrent reset of the server
        raise CliError(f"job {job_id} was started but cannot be read back")
    _print_job(args, job)
    return 0


async def jobs_list(args: argparse.Namespace) -> int:
    """``jobs list [--state S] [--name N] [--limit L | --all] [--cursor C]``: the status table."""
    if args.all and args.limit is not None:
        raise UsageError("--all lists every job: drop --limit (or keep --limit and drop --all)")
    client = await connect(connect_config(args), None)
    rows, cursor = await _collect(SystemTable(client), args, None if args.all else args.limit or DEFAULT_LIMIT)
    if args.json:
        page = PaginationResult(page=rows, is_done=cursor is None, continue_cursor=cursor)
        print_json(page.model_dump(mode="json", by_alias=True))
        return 0
    print(jobs_table(rows) if rows else "no scheduled functions" + _filters(args))
    note = await paused_note(client, {row.name for row in rows})
    if note is not None:
        print(note)
    if cursor is not None:
        total = (await client.count_workflows(jobs_query(args.state, args.name))).count
        if args.cursor is not None or total > len(rows):
            print(_more_note(args, len(rows), total, cursor))
    return 0


async def _collect(
    table: SystemTable, args: argparse.Namespace, limit: int | None
) -> tuple[list[ScheduledFunction], str | None]:
    """Up to ``limit`` rows (every row for ``None``) from ``args.cursor`` on, and the cursor after them."""
    rows: list[ScheduledFunction] = []
    cursor = args.cursor
    while limit is None or len(rows) < limit:
        size = MAX_PAGE_SIZE if limit is None else min(MAX_PAGE_SIZE, limit - len(rows))
        page = await table.paginate(state=args.state, name=args.name, page_size=size, cursor=cursor)
        rows += page.page
        cursor = page.continue_cursor
        if page.is_done:
            break
    return rows, cursor


def _more_note(args: argparse.Namespace, shown: int, total: int, cursor: str) -> str:
    """How to see the rows a ``jobs list`` left out."""
    size = args.limit or DEFAULT_LIMIT
    if args.cursor is None:
        head = f"{shown} of {total} jobs shown: --limit {total} or --all for all of them"
    else:
        head = f"{shown} jobs shown, more follow ({total} match in all): --all for every job"
    return f"note: {head}, --cursor {cursor} for the next {size}"


async def jobs_get(args: argparse.Namespace) -> int:
    """``jobs get ID``: one job."""
    client = await connect(connect_config(args), None)
    found = await SystemTable(client).get_on_queue(args.id)
    if found is None:
        raise CliError(f"no scheduled function has id {args.id!r}")
    job, task_queue = found
    paused = job.state.kind in ("pending", "inProgress") and await is_paused(client, task_queue, job.name)
    if args.json:
        print_json({**job_json(job), "paused": paused})
    else:
        print(job_details(job) + (f"\n{'paused':<12}yes: {job.name} is paused" if paused else ""))
    return 0


async def jobs_cancel(args: argparse.Namespace) -> int:
    """``jobs cancel ID``: pending -> canceled; running -> keeps running; finished -> nothing.

    ``jobs cancel --name N --state S [--yes]``: every matching job, as one Temporal batch.
    """
    if args.id is None:
        return await _cancel_many(args)
    if args.name or args.state or args.yes:
        raise UsageError("give a job ID, or --name / --state to cancel many, not both")
    client = await connect(connect_config(args), None)
    before = await _require_job(client, args.id)
    await Jobs(client).cancel(args.id)
    job = before
    if before.state.kind == "pending":
        # The job's workflow records the cancel when a worker runs its next task.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT
        while job.state.kind == "pending" and loop.time() < deadline:
            await asyncio.sleep(0.2)
            job = await _require_job(client, args.id)
    _print_job(args, job)
    if not args.json:
        note = {
            "pending": "cancel requested: the job records canceled when a worker for its task queue runs",
            "inProgress": "the job is running: it runs to the end; jobs it schedules from now on start canceled",
        }.get(job.state.kind)
        if before.state.kind not in ("pending", "inProgress"):
            note = f"the job had already finished ({before.state.kind}): nothing to cancel"
        if note:
            print(f"note: {note}")
    return 0


async def _cancel_many(args: argparse.Namespace) -> int:
    if not (args.name or args.state):
        raise UsageError("jobs cancel needs a job ID, or --name and/or --state to cancel many")
    state = args.state or "pending"
    client = await connect(connect_config(args), None)
    what = f"{state} jobs" + (f" of {args.name}" if args.name else "")
    if not args.yes:
        matching = (await client.count_workflows(jobs_query(state, args.name))).count
        if not _confirmed(f"cancel {matching} {what}? [y/N] "):
            raise CliError(f"not canceled: {matching} {what} match; add --yes to cancel them")
    count = await SystemTable(client).cancel_all(name=args.name, state=state)
    if args.json:
        print_json({"canceled": count, "name": args.name, "state": state})
    else:
        print(f"canceled {count} {what}")
    return 0


def _confirmed(question: str) -> bool:
    """Ask on a terminal; anything but a yes (or no terminal to ask on) is a no."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def jobs_retry(args: argparse.Namespace) -> int:
    """``jobs retry ID``: a new job with a failed job's function and arguments; prints its id."""
    app = load_app(args)
    client = await connect(connect_config(args), app)
    new_id = await KitcnClient(client, app).system.retry(args.id)
    if args.json:
        _print_job(args, await _require_job(client, new_id))
    else:
        print(new_id)
    return 0


async def _require_job(client: Client, job_id: str) -> ScheduledFunction:
    job = await SystemTable(client).get(job_id)
    if job is None:
        raise CliError(f"no scheduled function has id {job_id!r}")
    return job


async def _require_worker(client: Client, task_queue: str) -> None:
    """Refuse a direct action call nobody would answer (it would wait for a worker forever)."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not described.pollers:
        raise CliError(
            f"no worker serves task queue {task_queue!r} at {client.service_client.config.target_host}: "
            "start one with `kitcn-temporal worker` (or `kitcn-temporal dev`), or pass --task-queue"
        )


def _print_job(args: argparse.Namespace, job: ScheduledFunction) -> None:
    if args.json:
        print_json(job_json(job))
    else:
        print(job_details(job))


def _filters(args: argparse.Namespace) -> str:
    parts = [f"state {args.state}" if args.state else "", f"function {args.name}" if args.name else ""]
    shown = " and ".join(p for p in parts if p)
    return f" with {shown}" if shown else ""

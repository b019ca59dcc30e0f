"""Virtual time, as Temporal keeps it: each workflow's own clock, and the env's clock.

The dev server's time skipping is per workflow execution: a fast-forward moves one
workflow's clock (its timers, its delayed start, its retry backoffs), and a workflow started
later begins at wall-clock time. The env's own clock is a workflow of its own that never
runs (a start delayed by a century, on a task queue no worker polls): each ``advance``
fast-forwards it, and the env's virtual time is its time.

Layer: testing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from ._errors import TestEnvError
from ._server import TIME_SKIPPING_ARGS

#: The env's clock: a workflow type no worker knows, on a task queue no worker polls.
CLOCK_WORKFLOW = "kitcn.testing.Clock"
CLOCK_ID = "kitcn-testing-clock"
CLOCK_QUEUE = "kitcn-testing-clock"
#: The server reads a fast-forward in whole milliseconds: a shorter one is 0, which it reads as
#: "skip to the next timer", however far.
MIN_SPAN = timedelta(milliseconds=1)
#: Its start is delayed beyond any span a test advances, so it never has work in flight
#: (which would hold its clock still).
CLOCK_DELAY = timedelta(days=36500)


def own_now(desc: WorkflowExecutionDescription) -> datetime:
    """Where a workflow's own clock stands: its virtual time once skipped, else the wall clock."""
    info = desc.raw_description.workflow_extended_info
    if info.HasField("time_skipping_info"):
        return info.time_skipping_info.current_time.ToDatetime().replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


class Clock:
    """Fast-forwards workflows, and keeps the env's virtual time in a workflow of its own."""

    def __init__(self, client: Client, handle: WorkflowHandle[object, object]) -> None:
        self.client = client
        self.handle = handle
        # The SDK's fast-forward (UpdateWorkflowExecutionOptions, then a long poll). The config
        # only matters for workflows started through the skipper's own client, which we never use.
        self._skipper = TimeSkipper(client, config=TimeSkippingConfig(enabled=False))

    @classmethod
    async def start(cls, client: Client) -> Clock:
        handle: WorkflowHandle[object, object] = await client.start_workflow(
            CLOCK_WORKFLOW, id=CLOCK_ID, task_queue=CLOCK_QUEUE, start_delay=CLOCK_DELAY
        )
        return cls(client, handle)

    async def check(self, address: str) -> None:
        """Make sure the server skips time (a millisecond's fast-forward of the env's clock)."""
        try:
            await self.advance(MIN_SPAN)
        except RPCError as err:
            if err.status != RPCStatusCode.UNIMPLEMENTED:
                raise
            raise TestEnvError(
                f"the Temporal server at {address} does not skip time ({err.message}): start it with "
                f"kitcn_temporal.testing.TIME_SKIPPING_ARGS ({' '.join(TIME_SKIPPING_ARGS)})"
            ) from None

    async def offset(self) -> timedelta:
        """How far the env's virtual time is ahead of the wall clock."""
        return own_now(await self.handle.describe()) - datetime.now(timezone.utc)

    async def advance(self, span: timedelta) -> None:
        """Move the env's clock ``span`` (at least :data:`MIN_SPAN`) ahead."""
        assert span >= MIN_SPAN
        await self._skipper.fast_forward(self.handle, span)

    async def fast_forward(self, workflow_id: str, span: timedelta) -> None:
        """Move one workflow's clock ``span`` ahead; returns once it got there or the workflow
        closed (whatever was due on the way has run). A workflow that closed meanwhile is left."""
        assert span >= MIN_SPAN
        try:
            await self._skipper.fast_forward(self.client.get_workflow_handle(workflow_id), span)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: it closed meanwhile
                raise

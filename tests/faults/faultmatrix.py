"""The bad-input matrix's machinery: a case, the context it runs in, and how it is checked.

The cases themselves, one table, are in ``test_faults_bad_input.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from clihelpers import Result, assert_one_line_error, cli
from faultapp import misuse
from faultkit import HERE, FaultApp
from kitcn_temporal import CronJobs, CRPCError, KitcnClient, create_caller, cron_jobs
from kitcn_temporal._wire import JOB_WORKFLOW


class CliFailure(Exception):
    """A command that exited non-zero."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.err)
        self.result = result


@dataclass
class Matrix:
    """What one case runs against: the served fault app and a token of its own."""

    fault: FaultApp
    address: str
    token: str

    @property
    def kitcn(self) -> KitcnClient:
        return self.fault.kitcn

    @property
    def ids_file(self) -> str:
        return str(self.fault.directory / f"{self.token}.ids")

    def recorded_ids(self) -> list[str]:
        """Job ids a misusing procedure was handed before it failed."""
        path = Path(self.ids_file)
        return path.read_text().split() if path.exists() else []

    async def cli(self, *args: str) -> None:
        """Run ``kitcn-temporal ARGS`` against the app; raise :class:`CliFailure` if it fails."""
        if args[0] in ("run", "schedule"):
            # ``run`` calls a query or mutation in the command's process: it needs the database.
            args = (*args, "--app", "faultapp", "--task-queue", self.fault.queue, "--database", self.fault.url)
        result = await cli(self.address, *args, cwd=HERE)
        if result.code != 0:
            raise CliFailure(result)

    async def jobs_on_queue(self, extra: str = "") -> int:
        """How many jobs Temporal's visibility lists on the app's task queue."""
        query = f"WorkflowType = '{JOB_WORKFLOW}' AND TaskQueue = '{self.fault.queue}'{extra}"
        return (await self.fault.client.count_workflows(query)).count


Run = Callable[[Matrix], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    """One misuse: how to commit it, and the error it must raise."""

    name: str
    run: Run
    error: type[BaseException]
    fragments: tuple[str, ...]
    code: str | None

    def check(self, err: BaseException) -> None:
        """The error is the expected one: its code, and a message naming the culprit."""
        if isinstance(err, CliFailure):
            assert_one_line_error(err.result, *self.fragments)
            return
        if self.code is not None:
            assert isinstance(err, CRPCError) and err.code == self.code, repr(err)
        for fragment in self.fragments:
            assert fragment in str(err), (fragment, str(err))


CASES: list[Case] = []


def case(error: type[BaseException], *fragments: str, code: str | None = None) -> Callable[[Run], Run]:
    """Add the decorated misuse to the table, expecting ``error`` with ``fragments`` in its message."""

    def register(run: Run) -> Run:
        CASES.append(Case(run.__name__, run, error, fragments, code))
        return run

    return register


def bad_request(*fragments: str) -> Callable[[Run], Run]:
    return case(CRPCError, *fragments, code="BAD_REQUEST")


def later(m: Matrix) -> Any:
    """``caller.schedule`` for the misuse module, from a client."""
    return create_caller(m.kitcn, misuse).schedule


async def assert_no_schedule(m: Matrix, name: str) -> None:
    try:
        await m.fault.client.get_schedule_handle(f"kitcn-cron:{name}").describe()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND, err
    else:
        raise AssertionError(f"a schedule kitcn-cron:{name} exists")


def cron_case(
    error: type[BaseException], *fragments: str, left: int = 0
) -> Callable[[Callable[[CronJobs, Matrix], None]], Run]:
    """A cron declaration that must fail, recording nothing (``left`` declarations before it stay)."""

    def register(declare: Callable[[CronJobs, Matrix], None]) -> Run:
        async def run(m: Matrix) -> None:
            crons = cron_jobs()
            try:
                declare(crons, m)
            finally:
                assert len(crons) == left
                await assert_no_schedule(m, m.token)

        run.__name__ = declare.__name__
        return case(error, *fragments)(run)

    return register

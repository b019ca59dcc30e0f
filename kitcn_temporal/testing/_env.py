"""``TestEnv``: an app on an embedded Temporal server, with virtual time a test moves.

Layer: testing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from .._app import App
from .._client import KitcnClient
from .._plugin import connect_when_ready
from .._wire import SA_FUNCTION, SA_SCHEDULED_TIME, SA_STATE
from ..crons._declared import CronJobs
from ..crons._spec import SCHEDULE_ID_PREFIX
from ..ops._setup import setup_namespace
from . import _crons
from ._clock import MIN_SPAN, Clock, own_now
from ._errors import TestEnvError
from ._server import TestServer, new_namespace, register_namespace
from ._tracker import JobTracker

T = TypeVar("T")

#: Set by Temporal on each run a schedule starts: the time it was due.
_SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
#: Describes in flight at once while the env looks at its jobs.
_CONCURRENCY = 32
_POLL = 0.05
#: A job this close to the target of an advance is there (clocks are read a moment apart).
_AT_TARGET = timedelta(milliseconds=5)
#: ``advance``'s default time limit, in seconds of wall time, and what it adds per cron run.
ADVANCE_TIMEOUT = 60.0
CRON_RUN_TIME = 0.2
#: At most this many jobs are named in an error.
_NAMED = 10


@dataclass(frozen=True)
class _Job:
    """One of the env's jobs as ``describe`` shows it."""

    id: str
    #: Whether its workflow exists yet (a backfilled run may still be on its way).
    exists: bool
    running: bool = False
    name: str | None = None
    state: str | None = None
    #: When it is due, on its own clock.
    due: datetime | None = None
    #: Its own clock, now.
    clock: datetime | None = None
    lag: timedelta = timedelta(0)

    @property
    def waiting(self) -> bool:
        """Pending and not due yet."""
        return self.state == "pending" and self.due is not None and self.clock is not None and self.due > self.clock

    @property
    def busy(self) -> bool:
        """Due now, running, or about to start."""
        return not self.exists or (self.running and not self.waiting)

    def behind(self, target: datetime) -> timedelta:
        """How far its virtual time is short of ``target``."""
        if not self.running or self.clock is None:
            return timedelta(0)
        return target - (self.clock + self.lag)

    def label(self) -> str:
        if not self.exists:
            return f"{self.id} (not started yet)"
        due = f", due {self.due:%Y-%m-%d %H:%M:%S} UTC" if self.waiting and self.due else ""
        return f"{self.name or '?'} (job {self.id}, {self.state or 'running'}{due})"


class TestEnv:
    """An app on an embedded Temporal server, offline, with a worker in this process and
    virtual time that only the test moves::

        async with TestEnv.start(app, crons=crons) as env:
            user = env.kitcn.with_auth({"user_id": "ada"})
            sub = await create_caller(user, subscriptions).create_subscription(plan_id="pro")
            await env.advance(timedelta(days=30))    # the expiry job runs, in about a second
            await env.trigger_cron("daily report")    # a cron run now, a job like any
            await env.wait_idle()

    Each env has a Temporal namespace of its own (its jobs, crons and idempotency keys are
    its own) and its own copy of the app (a fresh SQLite database when the app has one).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        client: Client,
        tracker: JobTracker,
        clock: Clock,
        crons: CronJobs | None,
        directory: Path,
    ) -> None:
        self._app = app
        self._client = client
        self._kitcn = KitcnClient(client, app)
        self._tracker = tracker
        self._clock = clock
        self._crons = crons
        #: The env's temporary directory (its database, its server when it has its own).
        self.directory = directory
        self._loop = asyncio.get_running_loop()
        self._open = True
        #: Cron runs up to here have been started.

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        app: App,
        crons: CronJobs | None = None,
        database: str | None = None,
        *,
        server: TestServer | str | None = None,
    ) -> AsyncIterator[TestEnv]:
        """Start an env for ``app``: ``async with TestEnv.start(app) as env: ...``.

        :param app: the app under test; the env runs a copy of it (:meth:`App.with_options`).
        :param crons: the app's crons: synced, then paused (their runs come from
            :meth:`advance` and :meth:`trigger_cron`, never from the wall clock).
        :param database: the app's SQL URL for the test; default: a fresh SQLite file in the
            env's temporary directory when the app has a database.
        :param server: a :class:`TestServer` (or the address of a dev server started with
            :data:`TIME_SKIPPING_ARGS`) to share; default: a server of the env's own.
        """
        if not isinstance(app, App):
            raise TypeError(f"TestEnv.start() takes an App, not {app!r}")
        if crons is not None and not isinstance(crons, CronJobs):
            raise TypeError(f"TestEnv.start(crons=...) takes cron_jobs(), not {crons!r}")
        directory = Path(tempfile.mkdtemp(prefix="kitcn-env-"))
        own: TestServer | None = None
        env_app: App | None = None
        try:
            if server is None:
                loop = asyncio.get_running_loop()
                own = await loop.run_in_executor(None, lambda: TestServer.start(directory=directory / "server"))
            env_app = _app_for_test(app, database, directory)
            tracker = JobTracker()
            namespace = new_namespace()
            address = _address(own or server)
            client = await connect_when_ready(address, env_app, namespace=namespace, interceptors=[tracker])
            await register_namespace(client, namespace)
            await setup_namespace(client)
            clock = await Clock.start(client)
            await clock.check(address)
            if crons is not None:
                await crons.sync(client, env_app)  # paused as they are created (the tracker)
            env = cls(env_app, client, tracker, clock, crons, directory)
            async with Worker(client, task_queue=env_app.task_queue):
                try:
                    yield env
                finally:
                    env._open = False
                    # No backfill goes on starting runs on a shared server.
                    await _crons.delete(client, list(tracker.crons))
        finally:
            if env_app is not None and env_app.store is not None:
                await env_app.store.dispose()
            if own is not None:
                await asyncio.get_running_loop().run_in_executor(None, own.stop)
            shutil.rmtree(directory, ignore_errors=True)

    @property
    def app(self) -> App:
        """The env's copy of the app (its own database)."""
        self._check_open()
        return self._app

    @property
    def client(self) -> Client:
        """The env's Temporal client (its namespace; every workflow it starts is the env's)."""
        self._check_open()
        return self._client

    @property
    def kitcn(self) -> KitcnClient:
        """A :class:`~kitcn_temporal.KitcnClient` for the app: call and schedule procedures."""
        self._check_open()
        return self._kitcn

    @property
    def namespace(self) -> str:
        """The env's Temporal namespace."""
        return self._client.namespace

    def now(self) -> datetime:
        """The env's virtual time (UTC): the wall clock plus every span advanced so far."""
        self._check_open()
        return datetime.now(timezone.utc) + self._tracker.offset

    async def advance(self, span: timedelta, *, timeout: float | None = None) -> None:
        """Move virtual time ``span`` ahead: every job, timer, retry and cron run due by then runs.

        Returns once they have run and no job is due or running (as :meth:`wait_idle`).
        Jobs due within one span run concurrently, not in the order of their times: advance
        in smaller steps when that order matters.

        :param timeout: seconds of wall time it may take, else :class:`TestEnvError` naming
            the jobs not done; default 60, plus 0.2 for each cron run in the span (Temporal
            starts backfilled runs about 10 a second).
        """
        self._check_open()
        if not isinstance(span, timedelta) or span < MIN_SPAN:
            raise TestEnvError(
                f"advance() takes a timedelta of at least 1 ms, not {span!r}: virtual time only moves "
                "forward, in milliseconds"
            )
        since = len(self._tracker.started)
        target = self.now() + span
        await self._clock.advance(span)
        self._tracker.offset = await self._clock.offset()
        backfills = await self._start_cron_runs(target)
        if timeout is None:
            timeout = ADVANCE_TIMEOUT + CRON_RUN_TIME * sum(len(b.run_ids) for b in backfills)

        async def advancing() -> None:
            await _crons.wait_started(backfills)
            await self._catch_up(target)
            await self._until_idle()

        await self._bounded(advancing(), timeout, f"advance({span}) did not finish within {timeout:g}s", since)

    async def wait_idle(self, *, timeout: float = 30.0) -> None:
        """Return once no job of the env is due now or running (pending later ones may wait).

        :param timeout: seconds of wall time, else :class:`TestEnvError` naming the jobs
            still due or running.
        """
        self._check_open()
        since = len(self._tracker.started)
        await self._bounded(self._until_idle(), timeout, f"wait_idle() timed out after {timeout:g}s", since)

    async def trigger_cron(self, name: str, *, timeout: float = 30.0) -> str:
        """Run the cron ``name`` (declared, or registered at run time) now; returns its run's job id.

        The run is a job like any: :meth:`wait_idle` waits for it, ``kitcn.system.get`` reads it.
        """
        self._check_open()
        known = [schedule_id.removeprefix(SCHEDULE_ID_PREFIX) for schedule_id in self._tracker.crons]
        if name not in known:
            listed = ", ".join(map(repr, known)) if known else "none (TestEnv.start(app, crons=...))"
            raise TestEnvError(f"no cron named {name!r}: the env's crons are {listed}")
        handle = self._client.get_schedule_handle(SCHEDULE_ID_PREFIX + name)
        tracker = self._tracker
        tracker.triggers_named.clear()
        try:
            run_id = await self._bounded(_crons.trigger(handle), timeout, f"trigger_cron({name!r}) timed out")
            # Due at the wall-clock time of the trigger: it runs now on the env's timeline.
            tracker.track(run_id, tracker.offset)
        finally:
            tracker.triggers_named.set()
        return run_id

    # -- the work behind advance and wait_idle ----------------------------------------------

    async def _start_cron_runs(self, target: datetime) -> list[_crons.Backfill]:
        """Ask each cron's schedule, declared or registered at run time, for its runs up to
        ``target`` (they start over the next seconds)."""
        backfills: list[_crons.Backfill] = []
        for schedule_id, since in list(self._tracker.crons.items()):
            name = schedule_id.removeprefix(SCHEDULE_ID_PREFIX)
            backfill = await _crons.start_backfill(self._client, name, schedule_id, since, target)
            for run_id in backfill.run_ids:
                self._tracker.track(run_id, timedelta(0))  # due at its time on its own clock
            backfills.append(backfill)
            self._tracker.crons[schedule_id] = target
        return backfills

    async def _catch_up(self, target: datetime) -> None:
        """Fast-forward every job short of ``target`` until none is (jobs run on the way may
        schedule more)."""
        while True:
            behind = [(job, gap) for job in await self._jobs() if (gap := job.behind(target)) > _AT_TARGET]
            if not behind:
                return
            await _bounded_gather(self._clock.fast_forward(job.id, gap) for job, gap in behind)

    async def _until_idle(self) -> None:
        while True:
            # A job started while its starter was being read (the starter seen closed, the new
            # job not yet in the snapshot) would look idle: idle counts only if none started.
            started = len(self._tracker.started)
            if not any(job.busy for job in await self._jobs()) and len(self._tracker.started) == started:
                return
            await asyncio.sleep(_POLL)

    async def _jobs(self) -> list[_Job]:
        """The env's jobs that are running or about to start (closed ones are forgotten)."""
        jobs = await _bounded_gather(self._job(job_id) for job_id in list(self._tracker.live))
        for job in jobs:
            if job.exists and not job.running:
                self._tracker.live.pop(job.id, None)
        return [job for job in jobs if job.running or not job.exists]

    async def _job(self, job_id: str) -> _Job:
        try:
            desc = await self._client.get_workflow_handle(job_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return _Job(job_id, exists=False)
            raise
        return _job_of(desc, self._tracker.lags.get(job_id, timedelta(0)))

    async def _bounded(self, work: Awaitable[T], timeout: float, what: str, since: int | None = None) -> T:
        """``work`` within ``timeout`` seconds, else :class:`TestEnvError` saying what went on (and
        whether the jobs started from ``tracker.started[since]`` on kept scheduling new ones)."""
        try:
            return await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            jobs = _jobs_text(await self._jobs())
            if since is None:
                raise TestEnvError(f"{what}: {jobs}") from None
            recursion, started = self._tracker.recursion(since), len(self._tracker.started) - since
            if recursion is not None:
                raise TestEnvError(f"{what}: {recursion.text()}; {jobs}") from None
            if jobs == _IDLE:  # it gave up between two jobs: work went on all along
                scheduled = f", {started} of them scheduled while it waited" if started else ""
                jobs = f"jobs were due or running until it gave up{scheduled}"
            raise TestEnvError(f"{what}: {jobs}") from None

    def _check_open(self) -> None:
        if not self._open:
            raise TestEnvError("this TestEnv has stopped: use it inside `async with TestEnv.start(...) as env:`")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is not self._loop:
            raise TestEnvError(
                "this TestEnv was started in another event loop: its worker runs there; run the test "
                "in the loop of its fixtures (pytest-asyncio: give asyncio_default_fixture_loop_scope "
                "and the test's loop scope the same value)"
            )


def _job_of(desc: WorkflowExecutionDescription, lag: timedelta) -> _Job:
    attrs = desc.typed_search_attributes
    return _Job(
        desc.id,
        exists=True,
        running=desc.status == WorkflowExecutionStatus.RUNNING,
        name=attrs.get(SA_FUNCTION),
        state=attrs.get(SA_STATE),
        # A cron run records its due time when it starts its procedure; until then, its schedule's.
        due=attrs.get(SA_SCHEDULED_TIME) or attrs.get(_SCHEDULED_START),
        clock=own_now(desc),
        lag=lag,
    )


#: What a wait that timed out says when no job is due or running at that moment.
_IDLE = "no job is due or running now"


def _jobs_text(jobs: list[_Job]) -> str:
    if not jobs:
        return _IDLE
    named = ", ".join(job.label() for job in jobs[:_NAMED])
    more = f" and {len(jobs) - _NAMED} more" if len(jobs) > _NAMED else ""
    return f"{len(jobs)} job(s) still due or running: {named}{more}"


def _app_for_test(app: App, database: str | None, directory: Path) -> App:
    """The env's copy of ``app``: ``database``, else a fresh SQLite file when the app has one."""
    if database is None and app.database is not None:
        database = f"sqlite+aiosqlite:///{directory / 'app.db'}"
    return app.with_options(database=database)


def _address(server: TestServer | str | None) -> str:
    if isinstance(server, TestServer):
        return server.address
    if isinstance(server, str) and server:
        return server
    raise TypeError(f"TestEnv.start(server=...) takes a TestServer or a 'host:port' address, not {server!r}")


async def _bounded_gather(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``work`` with at most a few calls in flight at once."""
    limit = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: Awaitable[T]) -> T:
        async with limit:
            return await item

    return list(await asyncio.gather(*(one(item) for item in work)))

"""``KitcnClient``: call, schedule and inspect procedures from outside a worker.

Layer: client and wiring.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pydantic_core
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from ._app import App
from ._errors import CRPCError
from ._wire import CALL_ID_PREFIX, CALL_WORKFLOW, CallSpec
from .capacity._keys import concurrency_key
from .crons._runtime import Crons
from .execution._direct import call_here
from .jobs._handles import Jobs
from .jobs._scheduler import Scheduler
from .jobs._status import SystemTable
from .jobs._unit import Unit
from .procedures._codec import decode_output, encode_job_args
from .procedures._procedures import Procedure


class KitcnClient:
    """Trusted server-side access to an app's procedures through Temporal.

    Direct calls of queries and mutations run in this process, as the app's workers would
    run them (validation, middleware, ``ctx.auth``, ``ctx.db`` when the app has a database,
    so this process needs the app's database too): no workflow, and for a query or a
    mutation that schedules nothing, no Temporal call. A mutation's schedules stay atomic
    with it, and exactly once with the SQL store (``docs/semantics.md`` §7). Actions run on
    a worker, in a ``kitcn.Call`` workflow. Schedules made here take effect at once.

    :param client: a Temporal client (connected with :class:`~kitcn_temporal.KitcnPlugin`
        or the pydantic data converter).
    :param app: the app whose procedures are called.
    :param task_queue: where jobs and calls run; default ``app.task_queue``.
    :param public_only: refuse private procedures (``private_*``, ``.internal()``) with
        ``CRPCError(FORBIDDEN)``: for producers relaying untrusted requests.
    """

    def __init__(
        self,
        client: Client,
        app: App,
        *,
        task_queue: str | None = None,
        public_only: bool = False,
    ) -> None:
        self.client = client
        self.app = app
        self.task_queue = task_queue or app.task_queue
        self.public_only = public_only
        #: The identity direct calls carry (``ctx.auth``); never given to scheduled functions.
        self.auth: Any = None
        self._jobs = Jobs(client, self.task_queue)

    @classmethod
    async def connect(cls, app: App, *, profile: str | None = None, **options: Any) -> KitcnClient:
        """Connect with Temporal's environment configuration (``TEMPORAL_ADDRESS``,
        ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, config profiles).

        :param profile: the config profile to load (default: ``TEMPORAL_PROFILE`` or "default").
        :param options: passed to :class:`KitcnClient`.
        """
        from ._plugin import connect

        return cls(await connect(app, profile=profile), app, **options)

    def with_auth(self, identity: Any) -> KitcnClient:
        """A copy whose direct calls carry ``identity`` as ``ctx.auth`` (JSON-serialisable)."""
        try:
            pydantic_core.to_json(identity)
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as err:
            raise CRPCError("BAD_REQUEST", f"the auth identity must be JSON-serialisable: {err}") from None
        clone = copy.copy(self)
        clone.auth = identity
        return clone

    @property
    def scheduler(self) -> Scheduler:
        """``run_after / run_at / cancel`` by name, taking effect at once."""
        return Scheduler(self.app, Unit("immediate", "client", self._jobs), public_only=self.public_only)

    @property
    def crons(self) -> Crons:
        """The app's runtime crons: ``register / unregister / get / list``, taking effect at once."""
        return Crons(self.app, Unit("immediate", "client", self._jobs), public_only=self.public_only)

    @property
    def system(self) -> SystemTable:
        """The ``_scheduled_functions`` table (its ``retry`` schedules like :attr:`scheduler`)."""
        return SystemTable(self.client, self.scheduler)

    async def run(self, name: str, args: Any = None, *, on_worker: bool = False) -> Any:
        """Call procedure ``name`` directly and return its output (see :meth:`call`)."""
        return await self.call(self.app.get(name), args, on_worker=on_worker)

    async def call(self, proc: Procedure, args: Any = None, *, on_worker: bool = False) -> Any:
        """Call ``proc`` directly and return its output.

        A query or mutation runs in this process; an action on a worker, in a ``kitcn.Call``
        workflow (it keeps its at-most-once policy and its heartbeat there).

        :param on_worker: run a query or mutation on a worker too, in a ``kitcn.Call``
            workflow (for a producer that cannot reach the app's database; it costs a
            workflow execution).
        """
        name = self.app.name_of(proc)
        if self.public_only and proc.internal:
            raise CRPCError("FORBIDDEN", f"{name} is a private procedure: this client may not call it")
        # Checked as when the arguments travelled to a worker: the same errors either way.
        payload, _ = encode_job_args(proc, name, args)
        if proc.kind == "action" or on_worker:
            return await self._call_on_worker(proc, name, payload)
        return await call_here(self.app, proc, name, self._jobs, auth=self.auth, args=payload)

    async def _call_on_worker(self, proc: Procedure, name: str, payload: dict[str, Any]) -> Any:
        spec = CallSpec(name, self.app.exec_options(proc), payload, self.auth, concurrency_key(proc, name, payload))
        try:
            output = await self.client.execute_workflow(
                CALL_WORKFLOW,
                spec,
                # The procedure first, as in a job's id: the UI's workflow list shows what ran.
                id=f"{name}:{CALL_ID_PREFIX}{uuid.uuid4()}",
                task_queue=self.task_queue,
                static_summary=f"call {name}",
                # Lets a worker sharing this client take the call without a round trip.
                request_eager_start=True,
            )
        except WorkflowFailureError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise CRPCError.from_application_error(cause) from None
            raise CRPCError("INTERNAL_SERVER_ERROR", f"call to {name} failed: {cause or err}") from None
        return decode_output(proc, output)

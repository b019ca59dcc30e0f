"""Procedure contexts: what a handler receives as ``ctx``.

Layer: execution: carries the app, the unit, its scheduler, its runtime crons and the status table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from .._app import App
    from ..crons._runtime import Crons
    from ..jobs._scheduler import Scheduler
    from ..jobs._status import SystemTable
    from ..jobs._unit import Unit

logger = logging.getLogger("kitcn_temporal")


@dataclass(frozen=True)
class JobInfo:
    """The job a procedure runs as (``ctx.job``); ``None`` for a direct call."""

    #: The job id, which is the Temporal workflow id.
    id: str
    #: The procedure name, e.g. ``"orders.charge"``.
    name: str
    #: 1 on the first execution, 2 on the first retry, ...
    attempt: int
    #: When the job was due, in ms since the epoch.
    scheduled_time: int


class BaseCtx:
    """What every procedure context carries.

    Values added by middleware with :meth:`with_values` read as attributes
    (``ctx.user``).
    """

    def __init__(
        self,
        *,
        app: App,
        unit: Unit,
        scheduler: Scheduler,
        system: SystemTable,
        crons: Crons,
        auth: Any = None,
        job: JobInfo | None = None,
        meta: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        #: The caller's identity, or ``None``. Scheduled functions always run with ``None``.
        self.auth = auth
        #: ``run_after / run_at / cancel`` by procedure name.
        self.scheduler = scheduler
        #: The ``_scheduled_functions`` table: ``get(job_id)``, ``list(...)``.
        self.system = system
        #: Runtime crons: ``register / unregister`` (atomic in a mutation, refused in a query),
        #: ``get / list``.
        self.crons = crons
        #: The job this execution runs as, or ``None`` for a direct call.
        self.job = job
        #: The procedure's ``.meta(...)``.
        self.meta: Mapping[str, Any] = meta or {}
        self._unit = unit
        self._values: dict[str, Any] = dict(values or {})
        self.logger = logging.LoggerAdapter(
            logger, {"job_id": job.id if job else None, "procedure": job.name if job else None}
        )

    def with_values(self, **values: Any) -> Any:
        """A copy of this context with more values, for middleware: ``next(ctx.with_values(user=u))``."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._values = {**self._values, **values}
        return clone

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}"
            + (f" (middleware values: {', '.join(sorted(values))})" if values else "")
        )


class QueryCtx(BaseCtx):
    """Context of a query: reads only (``ctx.db`` is read-only when the app has a database)."""

    @property
    def db(self) -> AsyncSession:
        """A read-only SQLAlchemy ``AsyncSession`` on the app's database."""
        return _session(self)


class MutationCtx(BaseCtx):
    """Context of a mutation: ``ctx.db`` is one transaction, committed with its schedules."""

    @property
    def db(self) -> AsyncSession:
        """The mutation's SQLAlchemy ``AsyncSession`` (one transaction for the whole mutation).

        The runtime commits it, together with the record of the mutation's schedules.
        """
        return _session(self)


class ActionCtx(BaseCtx):
    """Context of an action: side effects; reaches data by calling mutations."""

    def __getattr__(self, name: str) -> Any:
        if name == "db":
            raise AttributeError(
                "an action has no ctx.db: read and write data by calling a query or a "
                "mutation (create_caller(ctx, module)), each runs in its own transaction"
            )
        return super().__getattr__(name)


def _session(ctx: BaseCtx) -> AsyncSession:
    """The unit's open database session (``ctx.db``)."""
    if ctx.app.store is None:
        raise RuntimeError(
            "ctx.db needs a database: create the app with App(..., database='sqlite+aiosqlite:///app.db') "
            "in every process that runs its procedures (a KitcnClient runs direct queries and "
            "mutations in its own process; the command line takes --database)"
        )
    if ctx._unit.db is None:
        raise RuntimeError("ctx.db is only available while the procedure runs")
    return ctx._unit.db

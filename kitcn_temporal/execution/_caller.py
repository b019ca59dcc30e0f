"""``create_caller``: call and schedule a module's procedures by attribute.

``caller = create_caller(ctx, orders)``; ``await caller.process_order(order_id="o1")``;
``await caller.schedule.after(5000).charge(order_id="o1")``.

Layer: execution: a caller's source is a procedure context or anything shaped like a
``KitcnClient`` (:class:`CallSource`), which lives a layer above.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from .._app import App
from .._errors import CRPCError
from .._wire import Debounce
from ..jobs._flow import debounce_of
from ..jobs._scheduler import ScheduleOptions, Scheduler, due_after, due_at
from ..procedures._procedures import Procedure
from ._context import BaseCtx
from ._run import call_in_process


@runtime_checkable
class CallSource(Protocol):
    """What a caller needs from outside a procedure: a :class:`~kitcn_temporal.KitcnClient`."""

    @property
    def app(self) -> App: ...

    @property
    def scheduler(self) -> Scheduler: ...

    async def call(self, proc: Procedure, args: Any = None) -> Any: ...


Source = BaseCtx | CallSource


def create_caller(source: Source, module: ModuleType) -> Caller:
    """A caller for ``module``'s procedures, from a procedure context or a KitcnClient.

    :param source: ``ctx`` inside a procedure, or a :class:`~kitcn_temporal.KitcnClient`.
    :param module: the module that declares the procedures, e.g. ``activities.orders``.
    """
    if not isinstance(module, ModuleType):
        raise TypeError(f"create_caller() takes a module of procedures, not {module!r}")
    if not isinstance(source, (BaseCtx, CallSource)):
        raise TypeError(f"create_caller() takes a procedure ctx or a KitcnClient, not {source!r}")
    return Caller(source, module)


class Caller:
    """Queries and mutations as attributes; ``.actions`` for actions; ``.schedule`` to schedule."""

    def __init__(self, source: Source, module: ModuleType) -> None:
        self._source = source
        self._module = module
        #: ``await caller.actions.charge(...)``: run an action (from an action or a client).
        self.actions = _Actions(self)
        #: ``caller.schedule.now / after(ms) / at(ts) / cancel(id)``.
        self.schedule = _Schedule(self)

    @property
    def _app(self) -> App:
        return self._source.app

    def _procedure(self, attr: str) -> Procedure:
        value = getattr(self._module, attr, None)
        if not isinstance(value, Procedure):
            names = sorted(k for k, v in vars(self._module).items() if isinstance(v, Procedure))
            raise AttributeError(
                f"{self._module.__name__} has no procedure {attr!r} (it has: {', '.join(names) or 'none'})"
            )
        return value

    def _invoker(self, proc: Procedure) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            payload = merge_args(self._app.name_of(proc), args, kwargs)
            if isinstance(self._source, BaseCtx):
                return await call_in_process(self._source, proc, payload)
            return await self._source.call(proc, payload)

        return call

    def __getattr__(self, attr: str) -> Callable[..., Awaitable[Any]]:
        if attr.startswith("__"):
            raise AttributeError(attr)
        proc = self._procedure(attr)
        if proc.kind == "action":
            raise AttributeError(
                f"{attr} is an action: call it with caller.actions.{attr}(...) from an action or a client"
            )
        return self._invoker(proc)


class _Actions:
    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    def __getattr__(self, attr: str) -> Callable[..., Awaitable[Any]]:
        if attr.startswith("__"):
            raise AttributeError(attr)
        proc = self._caller._procedure(attr)
        if proc.kind != "action":
            raise AttributeError(f"{attr} is a {proc.kind}: call it as caller.{attr}(...)")
        return self._caller._invoker(proc)


class _Schedule:
    def __init__(self, caller: Caller, options: ScheduleOptions | None = None) -> None:
        self._caller = caller
        self._options = options or ScheduleOptions()

    def options(
        self,
        *,
        key: str | None = None,
        priority: int | None = None,
        on_complete: Procedure | str | None = None,
        ttl: float | timedelta | None = None,
        fairness_key: str | None = None,
        fairness_weight: float | None = None,
    ) -> _Schedule:
        """The same schedule, with flow control: ``schedule.options(key="charge:o1").after(5000).charge(...)``.

        :param key: an idempotency key: the same key always gives the same job, started once.
        :param priority: Temporal task priority, 1 (first) to 5 (last).
        :param on_complete: a mutation run once the job has ended, whatever its state.
        :param ttl: not started within ``ttl`` of its due time, the job ends ``failed`` (expired).
        :param fairness_key: Temporal task-queue fairness key (e.g. a tenant id).
        :param fairness_weight: that key's share, 0.001 to 1000 (default 1).
        """
        return _Schedule(self._caller, ScheduleOptions(key, priority, on_complete, ttl, fairness_key, fairness_weight))

    @property
    def now(self) -> _When:
        """Schedule to run as soon as possible."""
        return _When(self._caller, lambda name: due_after(0, name), self._options)

    def after(self, delay: float | timedelta) -> _When:
        """Schedule to run after ``delay``: milliseconds or a timedelta."""
        return _When(self._caller, lambda name: due_after(delay, name), self._options)

    def at(self, timestamp: float | datetime) -> _When:
        """Schedule to run at ``timestamp``: ms since the epoch or a timezone-aware datetime."""
        return _When(self._caller, lambda name: due_at(timestamp, name), self._options)

    def debounce(self, key: str, period: float | timedelta, *, max_wait: float | timedelta | None = None) -> _When:
        """Schedule under a debounce key: run once calls have paused for ``period`` (ms or a
        timedelta). While the key's job has not started, a call returns its id, gives it the
        call's arguments and moves it to ``period`` from now, never later than ``max_wait``
        after the first call; once it has started, the next call makes a new job.
        """
        return _When(self._caller, lambda name: 0, self._options, (key, period, max_wait))

    async def cancel(self, job_id: str) -> None:
        """Cancel a scheduled function (see :meth:`Scheduler.cancel`)."""
        await _scheduler(self._caller._source).cancel(job_id)


class _When:
    def __init__(
        self,
        caller: Caller,
        due: Callable[[str], int],
        options: ScheduleOptions,
        debounce: tuple[str, float | timedelta, float | timedelta | None] | None = None,
    ) -> None:
        self._caller = caller
        self._due = due
        self._options = options
        #: ``schedule.debounce(key, period, max_wait=)``, checked at the call.
        self._debounce = debounce

    def __getattr__(self, attr: str) -> Callable[..., Awaitable[str]]:
        if attr.startswith("__"):
            raise AttributeError(attr)
        caller = self._caller
        proc = caller._procedure(attr)
        name = caller._app.name_of(proc)

        async def schedule(*args: Any, **kwargs: Any) -> str:
            payload = merge_args(name, args, kwargs)
            if proc.kind == "query":
                raise CRPCError("BAD_REQUEST", f"{name} is a query: queries cannot be scheduled")
            debounce: Debounce | None = None
            if self._debounce is not None:
                debounce = debounce_of(*self._debounce, name)
                due = debounce.call_ms + debounce.period_ms
            else:
                due = self._due(name)
            return await _scheduler(caller._source).schedule(name, due, payload, self._options, debounce)

        return schedule


def _scheduler(source: Source) -> Scheduler:
    return source.scheduler


def merge_args(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One argument value from a call's positional model/dict or its keyword arguments."""
    if len(args) > 1:
        raise CRPCError("BAD_REQUEST", f"{name} takes one argument (a model or a dict) or keyword arguments")
    if args and kwargs:
        raise CRPCError(
            "BAD_REQUEST", f"pass the arguments of {name} either as one model/dict or as keywords, not both"
        )
    if args:
        return args[0]
    return kwargs or None

"""Procedures and their builders: ``public_mutation.input(M).mutation(fn)``.

Builders are immutable: every method returns a new builder, so a derived builder
(``auth_mutation = c.mutation.use(require_user)``) never changes its parent.

Layer: procedures.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, get_type_hints

from pydantic import BaseModel, TypeAdapter
from temporalio.common import RetryPolicy

from .._errors import DeclarationError
from .._wire import FAIRNESS_KEY_MAX_BYTES, Kind
from ._names import check_procedure_name

Ctx = Any
#: ``async def mw(ctx, next)``: call ``await next(ctx)`` (or a ctx extended with
#: ``ctx.with_values(...)``) to run the rest of the chain, or raise to refuse.
Middleware = Callable[[Ctx, Callable[[Ctx], Awaitable[Any]]], Awaitable[Any]]
Handler = Callable[..., Any]
#: Takes a procedure's validated input (its model) and returns a fairness key, e.g. a tenant id.
KeyFn = Callable[[Any], str]

_UNSET: Any = object()


@dataclass(frozen=True)
class Procedure:
    """A query, mutation or action: its handler and everything declared about it.

    Its name (``"orders.charge"``) is given by the :class:`~kitcn_temporal.App` that
    holds it, unless set with ``.name()``.
    """

    kind: Kind
    fn: Handler
    #: The pydantic model of the input, or ``None`` for a procedure without arguments.
    input_model: type[BaseModel] | None
    #: Validates the output; ``None`` when neither ``.output()`` nor an annotation says.
    output_adapter: TypeAdapter[Any] | None
    middleware: tuple[Middleware, ...]
    meta: Mapping[str, Any]
    explicit_name: str | None
    internal: bool
    retry_policy: RetryPolicy | None
    #: Exception types retried as transient (besides ConnectionError and TimeoutError).
    transient: tuple[type[BaseException], ...]
    timeout: timedelta | None
    #: The module that declared the procedure (its name is relative to the app package).
    home_module: str
    #: Whether the handler takes the input argument (``fn(ctx, input)``) or only ``fn(ctx)``.
    takes_input: bool
    #: Default Temporal task priority of its jobs, 1 (first) to 5 (last); ``None``: the server's.
    priority: int | None = None
    #: At most this many starts per second across every worker (enforced by the server).
    rate_limit: float | None = None
    #: At most this many running at once in each worker process (``.worker_concurrency``).
    worker_concurrency: int | None = None
    #: At most this many running at once across every worker of the namespace (``.concurrency(n)``).
    concurrency: int | None = None
    #: ``.concurrency(n, key=fn)``: at most ``key_concurrency`` running at once per value of
    #: ``concurrency_key(input)``, across every worker.
    key_concurrency: int | None = None
    concurrency_key: Callable[[Any], str] | None = None
    #: Default fairness of its jobs (``.fairness(key=, weight=)``): a key from the input, a weight.
    fairness_key: KeyFn | None = None
    fairness_weight: float | None = None
    #: ``.rate_limit(per_second=, key=)``: the rate holds per value of this key (a fairness key).
    rate_limit_key: KeyFn | None = None

    @property
    def own_queue(self) -> bool:
        """Whether it runs on a task queue of its own (its limits are that queue's)."""
        return self.rate_limit is not None or self.worker_concurrency is not None

    @property
    def capped(self) -> bool:
        """Whether its runs take a slot of a fleet-wide cap (``.concurrency``) before they start."""
        return self.concurrency is not None or self.key_concurrency is not None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"procedure {self.fn.__qualname__} is not called directly: use "
            "create_caller(ctx, module).<name>(...) or schedule it"
        )


@dataclass(frozen=True)
class ProcedureBuilder:
    """Builds procedures of one kind. Every method returns a new builder."""

    kind: Kind
    _input: type[BaseModel] | None = None
    _output: Any = _UNSET
    _middleware: tuple[Middleware, ...] = ()
    _meta: Mapping[str, Any] = field(default_factory=dict)
    _name: str | None = None
    _internal: bool = False
    _retry: RetryPolicy | None = None
    _transient: tuple[type[BaseException], ...] = ()
    _timeout: timedelta | None = None
    _priority: int | None = None
    _rate_limit: float | None = None
    _worker_concurrency: int | None = None
    _concurrency: int | None = None
    _key_concurrency: int | None = None
    _concurrency_key: Callable[[Any], str] | None = None
    _fairness_key: KeyFn | None = None
    _fairness_weight: float | None = None
    _rate_limit_key: KeyFn | None = None

    def input(self, model: type[BaseModel]) -> ProcedureBuilder:
        """Validate the input with this pydantic model before the handler runs."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f".input() takes a pydantic BaseModel subclass, not {model!r}")
        return replace(self, _input=model)

    def output(self, type_: Any) -> ProcedureBuilder:
        """Validate the handler's return value with this type (a model, a type, or ``None``)."""
        TypeAdapter(type(None) if type_ is None else type_)  # fails now on an unusable type
        return replace(self, _output=type_)

    def use(self, middleware: Middleware) -> ProcedureBuilder:
        """Append a middleware: ``async def mw(ctx, next)``."""
        if not callable(middleware):
            raise TypeError(f".use() takes an async function (ctx, next), not {middleware!r}")
        return replace(self, _middleware=(*self._middleware, middleware))

    def meta(self, **values: Any) -> ProcedureBuilder:
        """Attach metadata (readable by middleware as ``ctx.meta``)."""
        return replace(self, _meta={**self._meta, **values})

    def name(self, name: str) -> ProcedureBuilder:
        """Override the procedure name (default ``"<module>.<function>"``)."""
        return replace(self, _name=check_procedure_name(name))

    def internal(self) -> ProcedureBuilder:
        """Mark as private: a ``KitcnClient(public_only=True)`` may not call or schedule it."""
        return replace(self, _internal=True)

    def retry(self, *policy_or_errors: RetryPolicy | type[BaseException]) -> ProcedureBuilder:
        """Set the retry policy and/or the exception types retried as transient.

        ``.retry(RetryPolicy(maximum_attempts=5), MyFlakyError)``. On an action, a
        policy opts in to retries (actions run once by default).
        """
        policy = self._retry
        transient = list(self._transient)
        for item in policy_or_errors:
            if isinstance(item, RetryPolicy):
                policy = item
            elif isinstance(item, type) and issubclass(item, BaseException):
                transient.append(item)
            else:
                raise TypeError(f".retry() takes a temporalio RetryPolicy or exception types, not {item!r}")
        return replace(self, _retry=policy, _transient=tuple(transient))

    def timeout(self, timeout: timedelta) -> ProcedureBuilder:
        """Limit one execution of the handler (Temporal's start-to-close timeout)."""
        if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
            raise ValueError(f".timeout() takes a positive timedelta, not {timeout!r}")
        return replace(self, _timeout=timeout)

    def priority(self, priority: int) -> ProcedureBuilder:
        """Default Temporal task priority of its jobs: 1 (first) to 5 (last).

        When jobs wait for workers, higher-priority ones start first. A schedule call's
        ``schedule.options(priority=n)`` overrides it.
        """
        return replace(self, _priority=check_priority(priority, "priority"))

    def rate_limit(self, *, per_second: float, key: KeyFn | None = None) -> ProcedureBuilder:
        """At most ``per_second`` starts per second of this procedure, across every worker.

        Enforced by the Temporal server on a task queue of the procedure's own (a mutation
        then runs as a regular activity, not a local one).

        :param key: a function of the validated input returning a string (e.g. a tenant id):
            the rate then holds for each value of the key, and keys do not wait for each other
            (Temporal's per-fairness-key rate limit; the key is the job's fairness key).
        """
        if (
            isinstance(per_second, bool)
            or not isinstance(per_second, (int, float))
            or not math.isfinite(per_second)
            or per_second <= 0
        ):
            raise DeclarationError(f".rate_limit(per_second=...) takes a finite number > 0, not {per_second!r}")
        if key is not None and not callable(key):
            raise DeclarationError(f".rate_limit(key=...) takes a function of the input returning a str, not {key!r}")
        return replace(self, _rate_limit=float(per_second), _rate_limit_key=key)

    def fairness(self, *, key: KeyFn | None = None, weight: float | None = None) -> ProcedureBuilder:
        """Default fairness of its jobs: Temporal's task-queue fairness, so that one key's backlog
        (a tenant's) does not starve another's; keys get turns in proportion to their weights.

        :param key: a function of the validated input returning the key (a str of 1 to 64 bytes).
        :param weight: the key's share, from 0.001 to 1000 (default 1). A call's
            ``schedule.options(fairness_key=, fairness_weight=)`` overrides either.
        """
        if key is not None and not callable(key):
            raise DeclarationError(f".fairness(key=...) takes a function of the input returning a str, not {key!r}")
        checked = None if weight is None else check_fairness_weight(weight, ".fairness(weight=...)")
        return replace(self, _fairness_key=key, _fairness_weight=checked)

    def worker_concurrency(self, limit: int) -> ProcedureBuilder:
        """At most ``limit`` executions of this procedure running at once in each worker process.

        The worker's slots on the procedure's own task queue; for a cap over every worker
        together, use :meth:`concurrency`.
        """
        return replace(self, _worker_concurrency=_check_limit(limit, ".worker_concurrency()"))

    def concurrency(self, limit: int, *, key: Callable[[Any], str] | None = None) -> ProcedureBuilder:
        """At most ``limit`` runs of this procedure at once across every worker of the namespace.

        ``key=fn``: at most ``limit`` at once per value of ``fn(input)`` (``fn`` takes the
        validated input model and returns a ``str``; it runs at the schedule call, so the key
        is known then and shown on the job's row). ``.concurrency(5).concurrency(1, key=fn)``
        stacks both. Jobs, cron runs and action calls run on a worker take a slot from the
        procedure's gate workflow (``kitcn-gate:<name>``) before they start, and give it back
        when they end; a direct query or mutation run in a caller's process takes none.
        """
        checked = _check_limit(limit, ".concurrency()")
        if key is None:
            return replace(self, _concurrency=checked)
        if not callable(key):
            raise DeclarationError(
                f".concurrency(key=...) takes a function of the input that returns a str, not {key!r}"
            )
        return replace(self, _key_concurrency=checked, _concurrency_key=key)

    def query(self, fn: Handler) -> Procedure:
        """Terminal: a query (reads only; cannot schedule)."""
        return self._build("query", fn)

    def mutation(self, fn: Handler) -> Procedure:
        """Terminal: a mutation (atomic; schedules take effect only if it succeeds)."""
        return self._build("mutation", fn)

    def action(self, fn: Handler) -> Procedure:
        """Terminal: an action (side effects; runs once unless given a retry policy)."""
        return self._build("action", fn)

    def _build(self, kind: Kind, fn: Handler) -> Procedure:
        if kind != self.kind:
            raise TypeError(f"this builder makes {self.kind}s: end it with .{self.kind}(fn), not .{kind}(fn)")
        if not callable(fn):
            raise TypeError(f".{kind}() takes a function (ctx, input), not {fn!r}")
        limits = (
            self._priority,
            self._rate_limit,
            self._worker_concurrency,
            self._concurrency,
            self._key_concurrency,
            self._fairness_key,
            self._fairness_weight,
        )
        if kind == "query" and limits != (None,) * len(limits):
            raise DeclarationError(
                "a query is never scheduled: .priority(), .rate_limit(), .concurrency(), "
                ".worker_concurrency() and .fairness() are for mutations and actions"
            )
        if self._rate_limit_key is not None and self._fairness_key is not None:
            raise DeclarationError(
                ".rate_limit(key=...) makes its key the jobs' fairness key: drop .fairness(key=...) "
                "(a .fairness(weight=...) scales the key's rate)"
            )
        takes_input, annotated_input, annotated_output = _inspect_handler(fn)
        input_model = self._input or annotated_input
        output = annotated_output if self._output is _UNSET else self._output
        adapter = None if output is _UNSET else TypeAdapter(type(None) if output is None else output)
        return Procedure(
            kind=kind,
            fn=fn,
            input_model=input_model,
            output_adapter=adapter,
            middleware=self._middleware,
            meta=dict(self._meta),
            explicit_name=self._name,
            internal=self._internal,
            retry_policy=self._retry,
            transient=self._transient,
            timeout=self._timeout,
            home_module=sys._getframe(2).f_globals.get("__name__", fn.__module__),
            takes_input=takes_input,
            priority=self._priority,
            rate_limit=self._rate_limit,
            worker_concurrency=self._worker_concurrency,
            concurrency=self._concurrency,
            key_concurrency=self._key_concurrency,
            concurrency_key=self._concurrency_key,
            fairness_key=self._fairness_key,
            fairness_weight=self._fairness_weight,
            rate_limit_key=self._rate_limit_key,
        )


def _check_limit(limit: Any, option: str) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DeclarationError(f"{option} takes a whole number >= 1, not {limit!r}")
    return limit


def _inspect_handler(fn: Handler) -> tuple[bool, type[BaseModel] | None, Any]:
    """How many arguments the handler takes and what its annotations say."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not 1 <= len(positional) <= 2:
        raise TypeError(
            f"handler {fn.__qualname__} must take (ctx) or (ctx, input), not {len(positional)} positional parameters"
        )
    try:
        hints = get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to no annotations
        hints = {}
    model = None
    if len(positional) == 2:
        hint = hints.get(positional[1].name)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            model = hint
    output: Any = hints.get("return", _UNSET)
    return len(positional) == 2, model, output


@dataclass(frozen=True)
class CRPC:
    """The factory returned by :func:`init_crpc`: one builder per kind."""

    query: ProcedureBuilder
    mutation: ProcedureBuilder
    action: ProcedureBuilder


def init_crpc(**meta: Any) -> CRPC:
    """Create the builders an app derives its own from.

    ``c = init_crpc(); auth_mutation = c.mutation.use(require_user)``.

    :param meta: metadata attached to every procedure built from these builders.
    """
    return CRPC(
        query=ProcedureBuilder("query", _meta=meta),
        mutation=ProcedureBuilder("mutation", _meta=meta),
        action=ProcedureBuilder("action", _meta=meta),
    )


_c = init_crpc()
public_query = _c.query
public_mutation = _c.mutation
public_action = _c.action
private_query = _c.query.internal()
private_mutation = _c.mutation.internal()
private_action = _c.action.internal()


#: Temporal's task priorities: 1 runs first, 5 last (3 when none is given).
PRIORITIES = range(1, 6)


def check_priority(priority: object, what: str) -> int:
    """``priority`` if it is 1 to 5, else :class:`DeclarationError` naming ``what``."""
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise DeclarationError(f"{what} is 1 (first) to 5 (last), not {priority!r}")
    return priority


def check_fairness_key(key: object, what: str) -> str:
    """``key`` if Temporal takes it as a fairness key (1 to 64 bytes of UTF-8), else
    :class:`DeclarationError` naming ``what``."""
    if not isinstance(key, str):
        raise DeclarationError(f"{what} must be a str (e.g. a tenant id), not {type(key).__name__}")
    size = len(key.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= FAIRNESS_KEY_MAX_BYTES or not key.isprintable():
        raise DeclarationError(
            f"{what} must be 1 to {FAIRNESS_KEY_MAX_BYTES} bytes of printable UTF-8 (Temporal's limit), "
            f"not {key[:80]!r} ({size} bytes)"
        )
    return key


#: The fairness weights Temporal honours (it clamps others into this range).
FAIRNESS_WEIGHTS = (0.001, 1000.0)


def check_fairness_weight(weight: object, what: str) -> float:
    """``weight`` as a float if it is a fairness weight Temporal honours, else :class:`DeclarationError`."""
    least, most = FAIRNESS_WEIGHTS
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or not least <= weight <= most
    ):
        raise DeclarationError(f"{what} is a number from {least:g} to {most:g} (a key's share), not {weight!r}")
    return float(weight)

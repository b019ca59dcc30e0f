"""``App``: the procedures of an application, named and ready to register.

Layer: app: names procedures, holds the app's options and its SQL store.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._errors import CRPCError
from ._wire import ExecOptions, RetrySpec, timedelta_to_ms
from .procedures._names import check_procedure_name
from .procedures._procedures import Procedure

if TYPE_CHECKING:
    from .sql import Store

#: Where jobs and direct calls run unless the app says otherwise.
DEFAULT_TASK_QUEUE = "kitcn"
#: Threads of each plain ``def`` procedure's own pool, unless ``App(sync_handler_threads=...)``.
DEFAULT_SYNC_HANDLER_THREADS = 8


class App:
    """The procedures of one application, each named ``"<module>.<function>"``.

    :param modules: the modules that declare procedures.
    :param package: the app package the names are relative to; by default each
        module's last dotted component (``activities.orders`` -> ``orders``).
    :param task_queue: the Temporal task queue that runs jobs and direct calls.
    :param name: the app's identity in a shared namespace: its crons' schedules record it,
        and a crons sync touches only the schedules of its own app. Default: ``task_queue``.
    :param database: optional SQLAlchemy URL of the app's database, for exactly-once
        mutations through ``ctx.db`` (needs the ``sql`` extra; see :mod:`kitcn_temporal.sql`).
    :param action_heartbeat_timeout: a worker lost mid-action fails its job after this long.
    :param mutation_timeout: default time limit of one mutation or query execution.
    :param action_timeout: default time limit of one action execution.
    :param unknown_procedure_grace: how long a job whose procedure no worker knows (removed or
        renamed by a deploy) waits for a worker that does (an older one, during a rolling
        deploy) before it fails with an error naming the procedure.
    :param sync_handler_threads: the threads each plain ``def`` procedure has to itself (its own
        pool: a stuck handler can exhaust only its own). An attempt that ends (timeout, cancel)
        while its thread still runs frees its place for new attempts, up to as many such
        threads again; beyond, new attempts wait for a thread.
    :param commit_guard_delay: with a database, how long a direct mutation that schedules has
        to commit and start its jobs before its commit guard starts them from the record (or,
        finding none, makes sure it never commits): see ``docs/semantics.md`` §7.
    """

    def __init__(
        self,
        modules: Iterable[ModuleType],
        *,
        package: str | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        database: str | None = None,
        action_heartbeat_timeout: timedelta = timedelta(seconds=10),
        mutation_timeout: timedelta = timedelta(minutes=1),
        action_timeout: timedelta = timedelta(minutes=10),
        unknown_procedure_grace: timedelta = timedelta(minutes=10),
        name: str | None = None,
        sync_handler_threads: int = DEFAULT_SYNC_HANDLER_THREADS,
        commit_guard_delay: timedelta = timedelta(seconds=30),
    ) -> None:
        if not task_queue or not isinstance(task_queue, str):
            raise ValueError(f"task_queue must be a non-empty string, not {task_queue!r}")
        if name is not None and (not isinstance(name, str) or not name.strip() or not name.isprintable()):
            raise ValueError(f"name must be a printable, non-empty string (or None for the task queue), not {name!r}")
        if (
            isinstance(sync_handler_threads, bool)
            or not isinstance(sync_handler_threads, int)
            or sync_handler_threads < 1
        ):
            raise ValueError(f"sync_handler_threads must be a positive integer, not {sync_handler_threads!r}")
        for label, value in (
            ("action_heartbeat_timeout", action_heartbeat_timeout),
            ("mutation_timeout", mutation_timeout),
            ("action_timeout", action_timeout),
            ("commit_guard_delay", commit_guard_delay),
        ):
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValueError(f"{label} must be a positive timedelta, not {value!r}")
        if not isinstance(unknown_procedure_grace, timedelta) or unknown_procedure_grace < timedelta(0):
            raise ValueError(
                f"unknown_procedure_grace must be a timedelta >= 0 (0: fail at once), not {unknown_procedure_grace!r}"
            )
        #: The constructor's options, for :meth:`with_options`.
        self._options: dict[str, Any] = {
            "package": package,
            "task_queue": task_queue,
            "database": database,
            "action_heartbeat_timeout": action_heartbeat_timeout,
            "mutation_timeout": mutation_timeout,
            "action_timeout": action_timeout,
            "unknown_procedure_grace": unknown_procedure_grace,
            "name": name,
            "sync_handler_threads": sync_handler_threads,
        }
        self.task_queue = task_queue
        #: The app's identity for its crons (``name``, else the task queue).
        self.name = task_queue if name is None else name
        self.sync_handler_threads = sync_handler_threads
        self.database = database
        self.action_heartbeat_timeout = action_heartbeat_timeout
        self.mutation_timeout = mutation_timeout
        self.action_timeout = action_timeout
        self.unknown_procedure_grace = unknown_procedure_grace
        self.commit_guard_delay = commit_guard_delay
        self.modules: tuple[ModuleType, ...] = tuple(modules)
        self._procedures: dict[str, Procedure] = {}
        self._names: dict[int, str] = {}
        self._origin: dict[str, str] = {}
        for module in self.modules:
            if not isinstance(module, ModuleType):
                raise TypeError(f"App() takes modules, not {module!r}")
            self._add_module(module, package)
        #: The app's SQL database (``ctx.db``), when ``database`` is given.
        self.store: Store | None = None
        if database is not None:
            from .sql import Store  # needs the sql extra: its import error says so

            self.store = Store(database)

    @classmethod
    def discover(cls, package: str, **options: Any) -> App:
        """Import ``package`` and every module under it, and collect their procedures.

        ``App.discover("activities")`` names ``activities/orders.py: charge``
        ``"orders.charge"``. Takes the same keyword options as :class:`App`. Without a
        ``database`` option, the package's own ``DATABASE`` URL (if it sets one) is used.
        """
        root = importlib.import_module(package)
        if "database" not in options and isinstance(getattr(root, "DATABASE", None), str):
            options["database"] = root.DATABASE
        modules = [root]
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix=f"{package}."):
            modules.append(importlib.import_module(info.name))
        return cls(modules, package=package, **options)

    def with_options(self, **options: Any) -> App:
        """A copy of this app with some of its options changed (the others as given to it).

        ``app.with_options(task_queue="billing-test", database="sqlite+aiosqlite:///t.db")``:
        the same procedures under the same names, with its own SQL store when it has a
        database (a store is never shared between two apps). Takes :class:`App`'s keyword
        options; an app whose ``name`` was not given takes the copy's task queue as its name.
        """
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            raise TypeError(
                f"App.with_options() got unknown option(s) {', '.join(map(repr, unknown))}: "
                f"the options are {', '.join(sorted(self._options))}"
            )
        return App(self.modules, **{**self._options, **options})

    def _add_module(self, module: ModuleType, package: str | None) -> None:
        mod_name = module.__name__
        if package is not None and (mod_name == package or mod_name.startswith(package + ".")):
            relative = mod_name[len(package) + 1 :]
        else:
            relative = mod_name.rsplit(".", 1)[-1]
        for attr, value in vars(module).items():
            if not isinstance(value, Procedure) or value.home_module != mod_name:
                continue
            if id(value) in self._names:  # the same procedure bound to a second attribute
                continue
            name = value.explicit_name or (f"{relative}.{attr}" if relative else attr)
            check_procedure_name(name)
            if name in self._procedures:
                raise ValueError(
                    f"duplicate procedure name {name!r}: declared in {self._origin[name]} "
                    f"and in {mod_name}.{attr}; rename one with .name(...)"
                )
            self._procedures[name] = value
            self._names[id(value)] = name
            self._origin[name] = f"{mod_name}.{attr}"

    @property
    def procedures(self) -> Mapping[str, Procedure]:
        """Every procedure by name."""
        return dict(self._procedures)

    def name_of(self, proc: Procedure) -> str:
        """The name this app gives ``proc``."""
        try:
            return self._names[id(proc)]
        except KeyError:
            raise CRPCError(
                "NOT_FOUND",
                f"procedure {proc.fn.__qualname__} (from {proc.home_module}) is not part of this "
                "app: add its module to App(...) or App.discover(...)",
            ) from None

    def get(self, name: str) -> Procedure:
        """The procedure called ``name``; ``CRPCError(NOT_FOUND)`` if there is none."""
        proc = self._procedures.get(name) if isinstance(name, str) else None
        if proc is None:
            raise CRPCError("NOT_FOUND", f"unknown procedure {name!r}: the app has no procedure of that name")
        return proc

    def exec_options(self, proc: Procedure) -> ExecOptions:
        """How a job or call runs ``proc``: its kind, time limit, retries and heartbeat."""
        if proc.kind == "action":
            timeout = proc.timeout or self.action_timeout
            retry = RetrySpec.from_policy(proc.retry_policy) if proc.retry_policy else RetrySpec(maximum_attempts=1)
            return ExecOptions(
                kind="action",
                timeout_ms=timedelta_to_ms(timeout),
                retry=retry,
                heartbeat_ms=timedelta_to_ms(min(self.action_heartbeat_timeout, timeout)),
                own_queue=proc.own_queue,
                gated=proc.capped,
            )
        # Queries and mutations: transient faults retried with backoff, without limit; the
        # activity marks developer errors non-retryable, so they fail at once.
        retry = RetrySpec.from_policy(proc.retry_policy) if proc.retry_policy else RetrySpec()
        return ExecOptions(
            kind=proc.kind,
            timeout_ms=timedelta_to_ms(proc.timeout or self.mutation_timeout),
            retry=retry,
            own_queue=proc.own_queue,
            gated=proc.capped,
        )

    def __repr__(self) -> str:
        named = "" if self.name == self.task_queue else f", name={self.name!r}"
        return f"App({len(self._procedures)} procedures, task_queue={self.task_queue!r}{named})"

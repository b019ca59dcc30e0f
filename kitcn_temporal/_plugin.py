"""``KitcnPlugin``: everything Temporal needs to run an app's jobs, in one plugin.

Layer: client and wiring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import warnings
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    PayloadCodec,
)
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ._app import App
from .capacity._gate import GateWorkflow
from .capacity._side_workers import FlowControl
from .capacity._slots import gate_activities
from .execution._activities import activity_for, procedure_activities
from .execution._direct import guard_activities
from .jobs._guard import CommitGuardWorkflow
from .jobs._start import AnyWorkerInterceptor
from .jobs._workflow import CallWorkflow, DebounceWorkflow, ScheduledFunctionWorkflow
from .ops._encryption import codec_for

#: Modules the workflow sandbox may share with the worker instead of re-importing per run.
_PASSTHROUGH = ("kitcn_temporal", "pydantic", "pydantic_core", "annotated_types")
_SDK_STICKY_TIMEOUT = timedelta(seconds=10)
#: How long a workflow task waits for the worker that cached its workflow.
STICKY_TIMEOUT = timedelta(seconds=3)
#: The SDK's default number of slots of each kind (``WorkerTuner.create_fixed``).
_SDK_SLOTS = 100
#: A worker's workflow task slots per local activity slot, unless the worker sets its own.
WORKFLOW_SLOTS_PER_LOCAL_ACTIVITY = 2


class KitcnPlugin(SimplePlugin):
    """Registers an app on a Temporal client or worker.

    ``Client.connect(addr, plugins=[KitcnPlugin(app)])``: every worker built on that
    client then runs the job workflow and one activity per procedure.

    :param tracing: add OpenTelemetry tracing (Temporal's ``TracingInterceptor``, on the
        global tracer provider): one trace from a schedule call through the job to the jobs
        it schedules. Needs ``pip install 'kitcn-temporal[tracing]'``.
    :param encryption_keys: AES-256-GCM keys (32-byte ``bytes`` or base64 ``str``, newest
        first) that encrypt every payload written to Temporal; ``None`` (the default) reads
        ``KITCN_ENCRYPTION_KEYS``, ``[]`` turns encryption off. Needs
        ``pip install 'kitcn-temporal[encryption]'``.
    """

    def __init__(
        self, app: App, *, tracing: bool = False, encryption_keys: Sequence[bytes | str] | None = None
    ) -> None:
        self.app = app
        self._flow = FlowControl(app, activity_for)
        #: The payload codec every client and worker of this plugin uses, if any.
        self.codec = codec_for(encryption_keys)
        interceptors: list[Any] = [AnyWorkerInterceptor()]
        if tracing:
            interceptors.append(_tracing_interceptor())
        super().__init__(
            "kitcn_temporal.KitcnPlugin",
            # Procedures take and return pydantic models (datetimes included), encrypted with keys.
            data_converter=functools.partial(kitcn_data_converter, codec=self.codec),
            # The job, direct-action-call, commit-guard, gate and debounce-holder workflows; the
            # procedures as activities, the one a fired commit guard runs, and the gates' own.
            workflows=[ScheduledFunctionWorkflow, CallWorkflow, CommitGuardWorkflow, GateWorkflow, DebounceWorkflow],
            activities=[*procedure_activities(app), *guard_activities(app), *gate_activities(app)],
            # A job whose procedure this worker does not know is tried on the task queue's others;
            # with tracing, spans for starts, workflows and activities carried in Temporal headers.
            interceptors=interceptors,
            # Our package and pydantic are deterministic to share with the sandbox.
            workflow_runner=_with_passthrough,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """See base class; also shortens the sticky-queue timeout left at the SDK default, and
        gives the worker twice as many workflow task slots as local activity slots when it set
        neither its workflow task slots nor a tuner.

        A job's query or mutation runs as a local activity inside its workflow task, which holds
        its slot until the procedure returns: with the SDK's 100 and 100, a worker running 100
        procedures had no slot left, and a job started from its own process (a producer beside
        the worker, an action scheduling follow-ups) lost its eager start and took a round trip
        through matching instead (about half the starts of a burst). The spare slots take those
        starts, and the timers, grants and callbacks of jobs already running.

        A side worker (the task queue of a rate- or concurrency-limited procedure) gets that
        procedure's activity only, within its limits.
        """
        side = self._flow.side_procedure(config.get("task_queue"))
        if side is not None:
            return self._flow.configure_side_worker(config, side)
        config = super().configure_worker(config)
        if config.get("sticky_queue_schedule_to_start_timeout") in (None, _SDK_STICKY_TIMEOUT):
            # A job cached on a worker that died moves to a live worker after 3 s, not 10 s
            # (its history is a handful of events: replaying it elsewhere is cheap).
            config["sticky_queue_schedule_to_start_timeout"] = STICKY_TIMEOUT
        if config.get("max_concurrent_workflow_tasks") is None and config.get("tuner") is None:
            local = config.get("max_concurrent_local_activities") or _SDK_SLOTS
            config["max_concurrent_workflow_tasks"] = WORKFLOW_SLOTS_PER_LOCAL_ACTIVITY * local
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """See base class; runs the side workers of the app's limited procedures beside it."""
        await self._flow.run_beside(worker, next)


class KitcnPayloadConverter(PydanticPayloadConverter):
    """:class:`PydanticPayloadConverter` whose instances share one set of encoding converters.

    The SDK builds a payload converter per workflow instance and per activation: each plain
    ``PydanticPayloadConverter`` built its converters anew and started with an empty cache of
    pydantic type adapters, so every job rebuilt ``TypeAdapter(dict)`` for its input and memo
    (~0.3 ms each). The converters are stateless but for that cache (thread-safe), so sharing
    them changes no payload.
    """

    def __init__(self) -> None:
        CompositePayloadConverter.__init__(self, *_shared_converters())


@functools.cache
def _shared_converters() -> tuple[EncodingPayloadConverter, ...]:
    return tuple(PydanticPayloadConverter().converters.values())


def kitcn_data_converter(existing: DataConverter | None = None, *, codec: PayloadCodec | None = None) -> DataConverter:
    """The pydantic data converter, with ``codec`` (and failure messages encoded by it) if given.

    :param existing: the client's converter: a payload converter of its own is kept (with a
        warning), a codec of its own too when ``codec`` is ``None``.
    """
    base = existing or DataConverter.default
    if base.payload_converter_class not in (DefaultPayloadConverter, PydanticPayloadConverter, KitcnPayloadConverter):
        # The user chose a converter of their own: keep it, but say what it must handle.
        warnings.warn(
            f"KitcnPlugin keeps the client's payload converter {base.payload_converter_class.__name__}: "
            "procedures pass pydantic models and datetimes, which it must convert as "
            "temporalio.contrib.pydantic's PydanticPayloadConverter does",
            stacklevel=2,
        )
    else:
        base = dataclasses.replace(base, payload_converter_class=KitcnPayloadConverter)
    if codec is None:
        return base
    if base.payload_codec is not None and base.payload_codec is not codec:
        raise ValueError(
            "this client already has a payload codec: give KitcnPlugin encryption_keys or a codec of your own, not both"
        )
    # A failure's message and stack trace may quote arguments: encrypted like the rest.
    return dataclasses.replace(
        base, payload_codec=codec, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
    )


def _tracing_interceptor() -> Any:
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError:
        raise ImportError(
            "KitcnPlugin(tracing=True) needs OpenTelemetry: pip install 'kitcn-temporal[tracing]'"
        ) from None
    return TracingInterceptor()


def _with_passthrough(existing: WorkflowRunner | None) -> WorkflowRunner:
    if existing is None:
        existing = SandboxedWorkflowRunner()
    if not isinstance(existing, SandboxedWorkflowRunner):
        return existing
    return dataclasses.replace(existing, restrictions=existing.restrictions.with_passthrough_modules(*_PASSTHROUGH))


async def connect(app: App, *, profile: str | None = None, **options: Any) -> Client:
    """Connect to Temporal with its environment configuration and the app's plugin."""
    from temporalio.envconfig import ClientConfig

    config: dict[str, Any] = {**ClientConfig.load_client_connect_config(profile=profile), **options}
    return await Client.connect(**config, plugins=[KitcnPlugin(app)])


async def connect_when_ready(
    address: str,
    app: App,
    *,
    namespace: str = "default",
    interceptors: Sequence[Interceptor] = (),
    timeout: float = 30.0,
    encryption_keys: Sequence[bytes | str] | None = None,
    **options: Any,
) -> Client:
    """Connect to a freshly started server, with the app's plugin (and ``interceptors``).

    :param encryption_keys: the plugin's (default: ``KITCN_ENCRYPTION_KEYS``).
    :param options: more ``Client.connect`` arguments (e.g. ``runtime=``).

    A dev server accepts connections a moment before it serves them: retry until it
    answers, and raise the last connection error after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            plugin = KitcnPlugin(app, encryption_keys=encryption_keys)
            return await Client.connect(
                address, namespace=namespace, plugins=[plugin], interceptors=interceptors, **options
            )
        except RuntimeError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)

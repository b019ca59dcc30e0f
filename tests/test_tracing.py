"""docs/semantics.md §13, tracing: one trace from a schedule call through the job to the jobs it schedules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.worker import Worker

from conftest import make_app
from helpers import token, wait_state
from kitcn_temporal import App, KitcnClient, KitcnPlugin
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    """The process's tracer provider (OpenTelemetry lets a process set it once)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(EXPORTER))
    return current


@pytest.fixture(scope="module")
async def traced(temporal_server: DevServer, provider: TracerProvider) -> AsyncIterator[KitcnClient]:
    app: App = make_app()
    client = await Client.connect(temporal_server.address, plugins=[KitcnPlugin(app, tracing=True)])
    async with Worker(client, task_queue=app.task_queue):
        yield KitcnClient(client, app)


def chain(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[tuple[str, object]]:
    """``span`` and its ancestors, nearest first: (name, the workflow id it names)."""
    by_id = {s.context.span_id: s for s in spans}
    found: list[tuple[str, object]] = []
    current: ReadableSpan | None = span
    while current is not None:
        found.append((current.name, (current.attributes or {}).get("temporalWorkflowID")))
        current = by_id.get(current.parent.span_id) if current.parent else None
    return found


async def test_one_trace_runs_from_the_schedule_call_through_the_job_to_the_jobs_it_schedules(
    traced: KitcnClient, provider: TracerProvider
) -> None:
    tok = token()
    EXPORTER.clear()
    with provider.get_tracer("producer").start_as_current_span("producer request"):
        parent = await traced.scheduler.run_after(
            0, "producers.schedule_many", {"token": tok, "count": 1, "delay_ms": 0}
        )
    await wait_state(traced, parent, "success")

    def child_ran() -> ReadableSpan | None:
        spans = EXPORTER.get_finished_spans()
        return next((s for s in spans if s.name == "RunActivity:targets.take_payload"), None)

    leaf = await wait_for(child_ran)
    spans = EXPORTER.get_finished_spans()
    (child,) = [r for r in await traced.system.list(name="targets.take_payload", limit=1000) if r.args["token"] == tok]
    assert [name for name, _ in chain(leaf, spans)] == [
        "RunActivity:targets.take_payload",
        "StartActivity:targets.take_payload",
        "StartWorkflow:kitcn.ScheduledFunction",  # the mutation's job, started from its activity
        "RunActivity:producers.schedule_many",
        "StartActivity:producers.schedule_many",
        "StartWorkflow:kitcn.ScheduledFunction",  # the producer's schedule call
        "producer request",
    ]
    starts = [wf for name, wf in chain(leaf, spans) if name.startswith("StartWorkflow")]
    assert starts == [child.id, parent]
    assert len({s.context.trace_id for s in spans}) == 1

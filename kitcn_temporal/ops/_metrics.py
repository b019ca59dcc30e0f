"""Prometheus metrics: Temporal's SDK metrics plus the jobs' own counters and lateness.

The SDK's ``Runtime`` serves every metric: :func:`metrics_runtime` builds one with a
Prometheus endpoint. Jobs are counted where they start (a producer's or an activity's client,
on that client's runtime) and where they end (the job workflow's replay-safe meter, which
records nothing while a history replays).

Layer: operations: metric names and recording helpers (only ``_wire`` imported).
"""

from __future__ import annotations

import functools

from temporalio.common import MetricCounter, MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from .._wire import JOB_WORKFLOW

#: Jobs started, by ``function`` (a cron run is counted by its job workflow when it starts).
JOBS_SCHEDULED = "kitcn_jobs_scheduled_total"
#: Jobs that ended, by ``function`` and ``state`` (``success`` | ``failed`` | ``canceled``).
JOBS_FINISHED = "kitcn_jobs_finished_total"
#: Seconds from a job's due time to the start of its procedure, by ``function``.
JOBS_WAITING = "kitcn_jobs_waiting"
_WAITING_HELP = "Runs waiting at their procedure's gate, by reason (concurrency or paused)"
START_LATENESS = "kitcn_job_start_lateness_seconds"
#: Bucket bounds of :data:`START_LATENESS`, in seconds (the SDK's default buckets are
#: milliseconds-sized: ``[50, 100, 500, ...]``).
LATENESS_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_SCHEDULED_HELP = "Jobs started, by function"
_FINISHED_HELP = "Jobs that ended, by function and state"
_LATENESS_HELP = "Seconds from a job's due time to the start of its procedure, by function"


def prometheus_config(port: int, host: str = "127.0.0.1") -> PrometheusConfig:
    """Temporal's Prometheus endpoint on ``host:port`` (``/metrics``), with the lateness
    histogram in seconds-sized buckets.

    Names are kept as written here: leave the SDK's ``counters_total_suffix`` and
    ``unit_suffix`` off (their defaults), or every kitcn name gets a second suffix.
    """
    return PrometheusConfig(
        bind_address=f"{host}:{port}",
        histogram_bucket_overrides={START_LATENESS: list(LATENESS_BUCKETS)},
    )


def metrics_runtime(port: int, host: str = "127.0.0.1") -> Runtime:
    """A Temporal ``Runtime`` serving Prometheus text on ``http://host:port/metrics``.

    For apps that build their own client and worker::

        runtime = kitcn_temporal.metrics_runtime(9464, host="0.0.0.0")
        client = await Client.connect(address, runtime=runtime, plugins=[KitcnPlugin(app)])

    Every client connected with it, and every worker built on such a client, reports there:
    the SDK's metrics (``temporal_*``) and ``kitcn_jobs_scheduled_total``,
    ``kitcn_jobs_finished_total`` and ``kitcn_job_start_lateness_seconds``. The endpoint is
    bound at once (a port in use raises).
    """
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus_config(port, host)))


def count_scheduled(meter: MetricMeter, function: str) -> None:
    """One more job of ``function`` started (``meter``: a job workflow's, for a cron run)."""
    _scheduled(meter).with_additional_attributes({"function": function}).add(1)


def count_started_by_client(runtime: Runtime | None, function: str, namespace: str, task_queue: str) -> None:
    """One more job started by a client on ``runtime`` (the SDK's default one when ``None``),
    with the labels a job workflow's meter gives its series (one label set for both)."""
    labels = {"function": function, "namespace": namespace, "task_queue": task_queue, "workflow_type": JOB_WORKFLOW}
    _client_scheduled((runtime or Runtime.default()).metric_meter).with_additional_attributes(labels).add(1)


def count_finished(meter: MetricMeter, function: str, state: str) -> None:
    """One more job of ``function`` ended in ``state``."""
    meter.create_counter(JOBS_FINISHED, _FINISHED_HELP).with_additional_attributes(
        {"function": function, "state": state}
    ).add(1)


def record_lateness(meter: MetricMeter, function: str, seconds: float) -> None:
    """How late a job of ``function`` started its procedure (never below 0)."""
    histogram = meter.create_histogram_float(START_LATENESS, _LATENESS_HELP)
    histogram.with_additional_attributes({"function": function}).record(max(0.0, seconds))


def record_waiting(meter: MetricMeter, function: str, reason: str, count: int) -> None:
    """How many runs of ``function`` wait at its gate for ``reason`` (``concurrency`` or
    ``paused``): set by the gate's workflow on the worker that runs it."""
    gauge = meter.create_gauge(JOBS_WAITING, _WAITING_HELP)
    gauge.with_additional_attributes({"function": function, "reason": reason}).set(count)


def _scheduled(meter: MetricMeter) -> MetricCounter:
    return meter.create_counter(JOBS_SCHEDULED, _SCHEDULED_HELP)


@functools.lru_cache(maxsize=16)
def _client_scheduled(meter: MetricMeter) -> MetricCounter:
    """A runtime's counter, made once (a runtime lives as long as the process)."""
    return _scheduled(meter)

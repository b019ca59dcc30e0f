"""kitcn-temporal: kitcn's procedures and scheduler for Python, running on Temporal.

Declare typed queries, mutations and actions; schedule them ``now``, ``after(ms)`` or
``at(ts)``; cancel them; read their state from the ``_scheduled_functions`` table;
declare crons or register them at runtime. Every timer, retry, schedule and job record lives in Temporal.

The public surface is :data:`__all__`. Beneath it, a folder per concept (``procedures``,
``jobs``, ``crons``, ``capacity``, ``execution``, ``ops``, ``sql``, ``cli``, ``testing``), in the
layer order that ``docs/architecture.md`` draws.
"""

from ._app import DEFAULT_TASK_QUEUE, App
from ._client import KitcnClient
from ._errors import ERROR_CODES, CRPCError, ErrorCode
from ._plugin import KitcnPlugin
from ._wire import JOB_WORKFLOW, STATE_KINDS
from .crons import CronConflictError, CronInfo, CronJob, CronJobs, Crons, CronStatus, SyncReport, cron_jobs
from .execution import ActionCtx, BaseCtx, Caller, JobInfo, MutationCtx, QueryCtx, create_caller
from .jobs import (
    MAX_SCHEDULE_CALLS,
    MAX_TOTAL_ARGS_BYTES,
    Completion,
    JobState,
    PaginationResult,
    ScheduledFunction,
    Scheduler,
    SystemTable,
)
from .ops import SetupError, SetupReport, metrics_runtime, prometheus_config, run, setup_namespace
from .procedures import (
    CRPC,
    Middleware,
    Procedure,
    ProcedureBuilder,
    init_crpc,
    private_action,
    private_mutation,
    private_query,
    public_action,
    public_mutation,
    public_query,
)

__all__ = [
    "CRPC",
    "DEFAULT_TASK_QUEUE",
    "ERROR_CODES",
    "JOB_WORKFLOW",
    "MAX_SCHEDULE_CALLS",
    "MAX_TOTAL_ARGS_BYTES",
    "STATE_KINDS",
    "ActionCtx",
    "App",
    "BaseCtx",
    "CRPCError",
    "Caller",
    "Completion",
    "CronConflictError",
    "CronInfo",
    "CronJob",
    "CronJobs",
    "CronStatus",
    "Crons",
    "ErrorCode",
    "JobInfo",
    "JobState",
    "KitcnClient",
    "KitcnPlugin",
    "Middleware",
    "MutationCtx",
    "PaginationResult",
    "Procedure",
    "ProcedureBuilder",
    "QueryCtx",
    "ScheduledFunction",
    "Scheduler",
    "SetupError",
    "SetupReport",
    "SyncReport",
    "SystemTable",
    "create_caller",
    "cron_jobs",
    "init_crpc",
    "metrics_runtime",
    "private_action",
    "private_mutation",
    "private_query",
    "prometheus_config",
    "public_action",
    "public_mutation",
    "public_query",
    "run",
    "setup_namespace",
]

"""kitcn-temporal: kitcn's procedures and scheduler for Python, running on Temporal.

Declare typed queries, mutations and actions; schedule them ``now``, ``after(ms)`` or
``at(ts)``; cancel them; read their state from the ``_scheduled_functions`` table;
declare crons or register them at runtime. Every timer, retry, schedule and job record lives in Temporal.

The public surface is :data:`__all__`; the layers below it are described in
``docs/architecture.md``.
"""

from ._app import DEFAULT_TASK_QUEUE, App
from ._caller import Caller, create_caller
from ._client import KitcnClient
from ._context import ActionCtx, BaseCtx, JobInfo, MutationCtx, QueryCtx
from ._cron_owner import CronConflictError
from ._cron_sync import CronStatus, SyncReport
from ._crons import CronJob, CronJobs, cron_jobs
from ._errors import ERROR_CODES, CRPCError, ErrorCode
from ._metrics import metrics_runtime
from ._plugin import KitcnPlugin
from ._procedures import (
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
from ._runtime_crons import CronInfo, Crons
from ._scheduler import MAX_SCHEDULE_CALLS, MAX_TOTAL_ARGS_BYTES, Scheduler
from ._script import run
from ._setup import SetupError, SetupReport, setup_namespace
from ._status import Completion, JobState, PaginationResult, ScheduledFunction, SystemTable
from ._wire import JOB_WORKFLOW, STATE_KINDS

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
    "public_action",
    "public_mutation",
    "public_query",
    "run",
    "setup_namespace",
]

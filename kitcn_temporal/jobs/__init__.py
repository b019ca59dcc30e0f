"""Jobs: a scheduled function on Temporal, from the schedule call to its row in the
``_scheduled_functions`` table.

Client and activity side (does I/O):

* ``_scheduler``: ``schedule.now / after / at / cancel`` and ``run_after / run_at``, their checks;
* ``_unit``: one execution and what it schedules, buffered (a mutation) or immediate;
* ``_handles``: start, cancel and describe ``kitcn.ScheduledFunction`` workflows by id;
* ``_flow``: the checks of a call's debounce, ttl and fairness options;
* ``_status``: the status table (``get``, ``list``, ``paginate``, ``cancel_all``, ``retry``).

Workflow side (deterministic, imports only ``_wire`` and ``ops._metrics``):

* ``_workflow``: the job workflow, the direct action call's workflow and a debounce key's holder;
* ``_attempts``: one job's attempts through cancels and deploys;
* ``_guard``: a direct mutation's commit guard.

Layer: jobs: above the app and capacity, below crons (a cron run is a job).
"""

from ._guard import CommitGuardWorkflow
from ._handles import Jobs
from ._scheduler import MAX_SCHEDULE_CALLS, MAX_TOTAL_ARGS_BYTES, ScheduleOptions, Scheduler
from ._start import AnyWorkerInterceptor
from ._status import Completion, JobState, PaginationResult, ScheduledFunction, SystemTable
from ._unit import Unit
from ._workflow import CallWorkflow, DebounceWorkflow, ScheduledFunctionWorkflow

__all__ = [
    "MAX_SCHEDULE_CALLS",
    "MAX_TOTAL_ARGS_BYTES",
    "AnyWorkerInterceptor",
    "CallWorkflow",
    "CommitGuardWorkflow",
    "Completion",
    "DebounceWorkflow",
    "JobState",
    "Jobs",
    "PaginationResult",
    "ScheduleOptions",
    "ScheduledFunction",
    "ScheduledFunctionWorkflow",
    "Scheduler",
    "SystemTable",
    "Unit",
]

"""Crons: Temporal schedules whose runs are jobs, declared in code or registered at runtime.

* ``_spec``: what a cron is (``CronJob``) and the checks every cron passes;
* ``_owner``: which app (and origin: declared or runtime) owns a ``kitcn-cron:`` schedule;
* ``_schedules``: a cron's schedule (``CronPlan``: its shape and hash), written only by its
  owner, and a mutation's buffered change applied after its commit;
* ``_declared``: ``cron_jobs()`` declarations; ``_sync``: their sync and ``crons list``'s rows;
* ``_runtime``: ``ctx.crons`` and ``KitcnClient.crons`` (Convex's crons component);
* ``_backfill``: a cron's runs of a window, started now (Temporal's schedule backfill).

Layer: crons: above jobs (each run is a job, a runtime cron change rides a unit's buffer),
below execution (whose contexts carry ``ctx.crons``).
"""

from ._declared import CronJob, CronJobs, cron_jobs
from ._owner import CronConflictError
from ._runtime import CronInfo, Crons
from ._schedules import apply_change
from ._sync import CronStatus, SyncReport

__all__ = [
    "CronConflictError",
    "CronInfo",
    "CronJob",
    "CronJobs",
    "CronStatus",
    "Crons",
    "SyncReport",
    "apply_change",
    "cron_jobs",
]

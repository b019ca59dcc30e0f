"""The reference app's crons, kept in Temporal as schedules ``kitcn-cron:<name>``.

``kitcn-temporal dev`` and ``kitcn-temporal worker`` sync them at start (this module is
their default ``--crons``); ``kitcn-temporal crons list`` shows their next runs.
"""

from __future__ import annotations

from activities import reports, sessions
from kitcn_temporal import cron_jobs

crons = cron_jobs()

# Run every 2 hours.
crons.interval("cleanup stale data", {"hours": 2}, sessions.cleanup_stale_data, {})

# Run at specific times using cron syntax: every day at 9 AM UTC.
crons.cron("daily report", "0 9 * * *", reports.generate_daily_report, {})

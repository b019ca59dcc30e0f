"""Cron declarations for the command-line tests: ``--crons clicrons:crons``."""

from __future__ import annotations

from datetime import timedelta

from kitcn_temporal import cron_jobs
from testapp import cronjobs

crons = cron_jobs()
crons.interval("cli hourly tick", {"hours": 1}, cronjobs.tick, {"token": "cli-cron"})
crons.cron(
    "cli weekday mornings",
    "0 9 * * mon-fri",
    cronjobs.tick,
    {"token": "cli-cron"},
    tz="Europe/Paris",
    overlap="buffer_one",
    jitter=timedelta(seconds=90),
)

#: Not a cron_jobs() set: ``--crons clicrons:not_crons`` is a mistake.
not_crons = ["cli hourly tick"]

"""The chaos app's declared cron: a ledger row every few seconds (the driver syncs it)."""

from __future__ import annotations

from kitcn_temporal import cron_jobs

from . import ledger

crons = cron_jobs()
crons.interval("chaos tick", {"seconds": 3}, ledger.write, {"kind": "cron"})

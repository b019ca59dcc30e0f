"""The chaos run's app (``python -m bench.chaos``): every procedure leaves a trace outside the worker.

Mutations write a row per run to the app's SQL database (``models.LedgerRow``, keyed by job
id, deliberately not unique); actions append ``start``/``done`` lines to a ledger file. The
checker reads both after the run: a second row or a second ``start`` for one job id is a
doubled run, a missing one a lost run. ``crons`` holds the declared cron.

New job kinds slot in as a module here plus a kind in ``bench.chaos._load`` (and, when they
need one, a check in ``bench.chaos._check``): ``capped`` is the first.
"""

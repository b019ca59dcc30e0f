"""Capacity: how many runs of a procedure may start, and when.

* ``_side_workers``: a task queue of its own for each rate-limited or per-worker-capped
  procedure (``.rate_limit``, ``.worker_concurrency``), served by a worker beside every worker.

Layer: capacity: above the app, below jobs (the job workflow asks it for a slot).
"""

from ._side_workers import FlowControl

__all__ = ["FlowControl"]

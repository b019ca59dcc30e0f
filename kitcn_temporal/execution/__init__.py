"""Execution: running one procedure, wherever it runs.

* ``_context``: ``QueryCtx``, ``MutationCtx``, ``ActionCtx``;
* ``_run``: validation, middleware, the handler, its transaction and schedules, in-process retries;
* ``_threads``: plain ``def`` handlers' own thread pools;
* ``_activities``: the Temporal activity around a procedure (one per procedure);
* ``_direct``: direct calls in a client's process, and a commit guard's recovery;
* ``_caller``: ``create_caller`` (direct calls and ``caller.schedule``).

Layer: execution: above jobs and crons, below the plugin and client that register and call it.
"""

from ._activities import activity_for, procedure_activities
from ._caller import Caller, create_caller
from ._context import ActionCtx, BaseCtx, JobInfo, MutationCtx, QueryCtx
from ._direct import call_here, guard_activities

__all__ = [
    "ActionCtx",
    "BaseCtx",
    "Caller",
    "JobInfo",
    "MutationCtx",
    "QueryCtx",
    "activity_for",
    "call_here",
    "create_caller",
    "guard_activities",
    "procedure_activities",
]

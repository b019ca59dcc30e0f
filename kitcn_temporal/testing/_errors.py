"""The one error a :class:`~kitcn_temporal.testing.TestEnv` raises for bad use or a wait that ran out.

Layer: testing.
"""

from __future__ import annotations


class TestEnvError(RuntimeError):
    """A test environment was used wrongly (a span that is not positive, an unknown cron, an env
    that has stopped) or a bounded wait ran out (``wait_idle``, ``advance``): the message says
    which, naming the jobs or crons concerned."""

    __test__ = False  # not a pytest test class

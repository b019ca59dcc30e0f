"""docs/semantics.md §11: the pytest plugin, in a user's project of its own.

A small project (an app, its crons, a conftest defining ``kitcn_app`` and ``kitcn_crons``,
tests using ``kitcn_env``) is written to a temporary directory and tested by pytest in a
subprocess of this virtualenv: nothing of this repository but the installed kitcn_temporal
is on its path. The plugin starts its own server for the session, and the run must exit
with pytest's status every time (the Temporal SDK can abort the interpreter at exit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Runs alone, after the files that run two at a time (make pytest):
#: each test runs a whole pytest session with its own Temporal server.
pytestmark = pytest.mark.serial

PROJECT = {
    "pytest.ini": """
        [pytest]
        asyncio_default_fixture_loop_scope = function
    """,
    "shop/__init__.py": "",
    "shop/billing.py": """
        from pydantic import BaseModel

        from kitcn_temporal import private_mutation, public_mutation

        ENDED: list[str] = []
        DIGESTS: list[int] = []


        class TrialIn(BaseModel):
            user: str


        @public_mutation.input(TrialIn).mutation
        async def start_trial(ctx, input: TrialIn) -> str:
            return await ctx.scheduler.run_after(14 * 24 * 3600 * 1000, "billing.end_trial", {"user": input.user})


        @private_mutation.input(TrialIn).mutation
        async def end_trial(ctx, input: TrialIn) -> None:
            ENDED.append(input.user)


        @private_mutation.mutation
        async def send_digest(ctx) -> None:
            DIGESTS.append(ctx.job.scheduled_time)
    """,
    "shop/crons.py": """
        from kitcn_temporal import cron_jobs

        from . import billing

        crons = cron_jobs()
        crons.daily("digest", {"hour_utc": 8, "minute_utc": 0}, billing.send_digest)
    """,
    "conftest.py": """
        import pytest

        from kitcn_temporal import App


        @pytest.fixture
        def kitcn_app():
            return App.discover("shop")


        @pytest.fixture
        def kitcn_crons():
            from shop.crons import crons

            return crons
    """,
    "test_shop.py": """
        from datetime import timedelta

        import pytest

        from kitcn_temporal import create_caller
        from shop import billing

        pytestmark = pytest.mark.asyncio


        async def test_a_trial_ends_after_fourteen_days(kitcn_env):
            job_id = await create_caller(kitcn_env.kitcn, billing).start_trial(user="ada")
            await kitcn_env.advance(timedelta(days=13))
            assert billing.ENDED == []
            await kitcn_env.advance(timedelta(days=1))
            assert billing.ENDED == ["ada"]
            assert (await kitcn_env.kitcn.system.get(job_id)).state.kind == "success"


        async def test_the_digest_goes_out_every_day(kitcn_env):
            sent = len(billing.DIGESTS)
            await kitcn_env.advance(timedelta(days=2))
            assert len(billing.DIGESTS) == sent + 2
    """,
}
FAILING = {
    "test_broken.py": """
        import pytest

        pytestmark = pytest.mark.asyncio


        async def test_that_fails(kitcn_env):
            assert kitcn_env.now() is None
    """
}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KITCN_TEST_NO_HARD_EXIT")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, PROJECT)
    return tmp_path


@pytest.mark.parametrize(
    ("loops", "runs"),
    [
        ((), 2),  # the SDK's exit-time abort hits about one run in three: every run must exit 0
        (("-o", "asyncio_default_test_loop_scope=session", "-o", "asyncio_default_fixture_loop_scope=session"), 1),
    ],
    ids=["function loops", "one session loop"],
)
async def test_a_users_project_tests_its_app_with_kitcn_env(project: Path, loops: tuple[str, ...], runs: int) -> None:
    for _ in range(runs):
        done = run_pytest(project, *loops)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 passed" in done.stdout


async def test_a_failing_test_makes_the_run_exit_with_pytests_status(project: Path) -> None:
    write(project, FAILING)
    done = run_pytest(project, "-k", "fails or trial")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout


async def test_kitcn_env_without_a_kitcn_app_fixture_says_what_to_define(tmp_path: Path) -> None:
    write(
        tmp_path, {"test_it.py": "import pytest\n\n\n@pytest.mark.asyncio\nasync def test_it(kitcn_env):\n    pass\n"}
    )
    done = run_pytest(tmp_path)
    assert done.returncode == 1
    assert "define a fixture named kitcn_app that returns it" in done.stdout

"""docs/semantics.md §13, bulk work: cancel_all over Temporal batch operations, retry of a failed job."""

from __future__ import annotations

import pytest

from clihelpers import assert_one_line_error, cli
from helpers import token, wait_state
from kitcn_temporal import App, CRPCError, KitcnClient
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import RUNS, wait_for

BULK = "targets.bulk_target"


async def pending_bulk_jobs(kitcn: KitcnClient, count: int, tok: str) -> list[str]:
    """``count`` pending jobs of the bulk target, once the visibility store lists them all."""
    ids = [await kitcn.scheduler.run_after(600_000, BULK, {"token": tok}) for _ in range(count)]
    query = f"KitcnFunction = '{BULK}' AND ExecutionStatus = 'Running'"

    async def listed() -> bool:
        return (await kitcn.client.count_workflows(query)).count >= count

    await wait_for(listed)
    return ids


async def test_cancel_all_cancels_every_pending_job_of_a_function_and_counts_them(kitcn: KitcnClient) -> None:
    tok = token()
    ids = await pending_bulk_jobs(kitcn, 12, tok)
    other = await kitcn.scheduler.run_after(600_000, "targets.touch", {"token": tok})
    assert await kitcn.system.cancel_all(name=BULK, state="pending") == 12
    for job_id in ids:
        assert (await wait_state(kitcn, job_id)).state.kind == "canceled"
    assert (await kitcn.system.get(other)).state.kind == "pending"  # type: ignore[union-attr]
    assert RUNS[tok] == []
    await kitcn.scheduler.cancel(other)


async def test_cancel_all_cancels_only_jobs_that_have_not_finished(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="cancel_all cancels pending or inProgress jobs") as err:
        await kitcn.system.cancel_all(name=BULK, state="success")
    assert err.value.code == "BAD_REQUEST"


async def test_cancel_all_from_a_mutation_is_refused_it_takes_effect_at_once(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="cancel_all takes effect at once: call it from an action or a client"):
        await kitcn.run("targets.cancel_all_in_mutation", {"token": token()})


async def test_retry_schedules_a_new_job_with_the_failed_jobs_function_and_arguments(kitcn: KitcnClient) -> None:
    tok = token()
    failed = await kitcn.scheduler.run_after(0, "targets.developer_error", {"token": tok})
    assert (await wait_state(kitcn, failed)).state.kind == "failed"
    again = await kitcn.system.retry(failed)
    assert again != failed and again.startswith("targets.developer_error-")
    job = await wait_state(kitcn, again)
    assert (job.name, job.args, job.state.kind) == ("targets.developer_error", {"token": tok}, "failed")
    assert RUNS[tok] == [1, 1]  # it ran a second time, as a job of its own (attempt 1)


async def test_retry_refuses_a_job_that_did_not_fail(kitcn: KitcnClient) -> None:
    done = await kitcn.scheduler.run_after(0, "targets.touch", {"token": token()})
    await wait_state(kitcn, done, "success")
    with pytest.raises(CRPCError, match=f"job {done} is success: only a failed job can be retried"):
        await kitcn.system.retry(done)
    with pytest.raises(CRPCError) as err:
        await kitcn.system.retry("targets.touch-no-such-job")
    assert err.value.code == "NOT_FOUND"


# -- the command line ----------------------------------------------------------------------


async def test_jobs_cancel_by_name_and_state_with_yes_prints_the_count(
    temporal_server: DevServer, kitcn: KitcnClient
) -> None:
    ids = await pending_bulk_jobs(kitcn, 3, token())
    result = await cli(temporal_server.address, "jobs", "cancel", "--name", BULK, "--state", "pending", "--yes")
    assert result.code == 0, result.err
    assert result.out == f"canceled 3 pending jobs of {BULK}\n"
    for job_id in ids:
        assert (await wait_state(kitcn, job_id)).state.kind == "canceled"


async def test_jobs_cancel_of_many_without_yes_refuses_in_one_line(
    temporal_server: DevServer, kitcn: KitcnClient
) -> None:
    ids = await pending_bulk_jobs(kitcn, 2, token())
    result = await cli(temporal_server.address, "jobs", "cancel", "--name", BULK)
    assert_one_line_error(result, f"not canceled: 2 pending jobs of {BULK} match; add --yes to cancel them")
    for job_id in ids:
        assert (await kitcn.system.get(job_id)).state.kind == "pending"  # type: ignore[union-attr]
    assert await kitcn.system.cancel_all(name=BULK) == 2


async def test_jobs_cancel_takes_an_id_or_filters_not_both(temporal_server: DevServer) -> None:
    result = await cli(temporal_server.address, "jobs", "cancel", "some-id", "--name", BULK)
    assert_one_line_error(result, "give a job ID, or --name / --state to cancel many, not both")


async def test_jobs_retry_prints_the_new_jobs_id(temporal_server: DevServer, app: App, kitcn: KitcnClient) -> None:
    tok = token()
    failed = await kitcn.scheduler.run_after(0, "targets.developer_error", {"token": tok})
    await wait_state(kitcn, failed, "failed")
    args = ("--app", "testapp", "--task-queue", app.task_queue)
    result = await cli(temporal_server.address, "jobs", "retry", failed, *args)
    assert result.code == 0, result.err
    new_id = result.out.strip()
    assert (await wait_state(kitcn, new_id)).args == {"token": tok}
    again = await cli(temporal_server.address, "jobs", "retry", new_id, *args, "--json")  # it failed too
    assert again.code == 0, again.err
    assert (again.json()["name"], again.json()["args"]) == ("targets.developer_error", {"token": tok})
    done = await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok})
    await wait_state(kitcn, done, "success")
    not_failed = await cli(temporal_server.address, "jobs", "retry", done, *args)
    assert_one_line_error(not_failed, "BAD_REQUEST", "only a failed job can be retried")

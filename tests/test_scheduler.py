"""docs/semantics.md §3: scheduling from mutations, actions and clients, and every rule of the table."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from helpers import jobs_with_token, settle_visibility, token, wait_state
from kitcn_temporal import CRPCError, KitcnClient, create_caller
from testapp import producers, shapes, targets
from testapp.probe import RUNS, wait_for


async def test_schedule_returns_the_job_id_which_is_the_workflow_id(kitcn: KitcnClient, client) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.now.touch(token=tok)
    assert isinstance(job_id, str)
    desc = await client.get_workflow_handle(job_id).describe()
    assert desc.id == job_id
    assert desc.workflow_type == "kitcn.ScheduledFunction"
    job = await wait_state(kitcn, job_id, "success")
    assert job.name == "targets.touch"
    assert RUNS[tok][0][1].id == job_id


async def test_mutation_that_schedules_three_then_raises_schedules_none(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, producers).schedule_three_then_raise(token=tok)
    assert err.value.code == "INTERNAL_SERVER_ERROR"
    assert "changed my mind" in err.value.message
    ids = RUNS[tok]
    assert len(ids) == 3  # the three schedule calls returned ids...
    for job_id in ids:  # ...but no job exists under any of them
        assert await kitcn.system.get(job_id) is None


async def test_mutation_retried_after_two_transient_failures_schedules_its_jobs_once(
    kitcn: KitcnClient,
) -> None:
    tok = token()
    job_id = await create_caller(kitcn, producers).schedule.now.schedule_three_flaky(token=tok)
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "success"
    attempts = RUNS[f"{tok}:ids"]
    assert len(attempts) == 3  # ran three times...
    assert attempts[0] == attempts[1] == attempts[2]  # ...naming the same three job ids
    for child in attempts[2]:
        assert (await wait_state(kitcn, child)).state.kind == "success"
    await wait_for(lambda: len(RUNS[tok]) >= 3)
    await settle_visibility(kitcn, tok)
    assert len(RUNS[tok]) == 3  # each child ran once
    assert len(jobs_with_token(await kitcn.system.list(name="targets.touch", limit=500), tok)) == 3


async def test_mutation_cancel_takes_effect_only_if_the_mutation_succeeds(kitcn: KitcnClient) -> None:
    tok = token()
    later = create_caller(kitcn, targets).schedule
    target = await later.after(timedelta(minutes=5)).touch(token=tok)
    mutations = create_caller(kitcn, producers)
    with pytest.raises(CRPCError):
        await mutations.cancel_then_raise(token=tok, job_id=target)
    assert (await kitcn.system.get(target)).state.kind == "pending"
    await mutations.cancel_it(token=tok, job_id=target)
    assert (await wait_state(kitcn, target)).state.kind == "canceled"


async def test_a_job_scheduled_and_canceled_in_one_mutation_is_created_canceled(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, producers).schedule_and_cancel_own(token=tok)
    assert (await wait_state(kitcn, job_id)).state.kind == "canceled"
    assert RUNS[tok] == []


async def test_nested_mutation_schedules_join_the_callers_unit(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError):
        await create_caller(kitcn, producers).outer_mutation(token=tok)
    [job_id] = RUNS[f"{tok}:ids"]
    assert await kitcn.system.get(job_id) is None


async def test_action_schedules_immediately_and_they_stand_when_it_fails(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError, match="failed after scheduling"):
        await create_caller(kitcn, producers).actions.schedule_then_fail(token=tok)
    [job_id] = RUNS[f"{tok}:ids"]
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_a_mutation_called_from_an_action_is_a_unit_of_its_own(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError, match="action failed after the mutation"):
        await create_caller(kitcn, producers).actions.action_calls_mutation_then_fails(token=tok)
    [job_id] = RUNS[f"{tok}:ids"]
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_client_schedules_immediately(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok})
    assert (await wait_state(kitcn, job_id)).state.kind == "success"


async def test_arguments_may_be_a_model_a_dict_or_keywords(kitcn: KitcnClient) -> None:
    tok = token()
    now = create_caller(kitcn, targets).schedule.now
    ids = [
        await now.touch(targets.TokenIn(token=tok)),
        await now.touch({"token": tok}),
        await now.touch(token=tok),
    ]
    for job_id in ids:
        job = await wait_state(kitcn, job_id)
        assert job.args == {"token": tok}
        assert job.state.kind == "success"


async def test_bad_arguments_raise_at_the_call_and_schedule_nothing(kitcn: KitcnClient) -> None:
    tok = token()
    now = create_caller(kitcn, targets).schedule.now
    with pytest.raises(CRPCError) as err:
        await now.touch(tokn=tok)
    assert err.value.code == "BAD_REQUEST"
    assert "targets.touch" in err.value.message and "token" in err.value.message
    with pytest.raises(CRPCError, match="BAD_REQUEST"):
        await now.touch(token=123)
    with pytest.raises(CRPCError, match="either as one model/dict or as keywords"):
        await now.touch({"token": tok}, token=tok)
    await settle_visibility(kitcn, tok)
    rows = await kitcn.system.list(name="targets.touch", limit=500)
    assert [r for r in rows if r.args.get("tokn") == tok or r.args.get("token") == 123] == []


async def test_after_accepts_milliseconds_and_timedeltas(kitcn: KitcnClient) -> None:
    tok = token()
    later = create_caller(kitcn, targets).schedule
    before = datetime.now(timezone.utc).timestamp() * 1000
    a = await kitcn.system.get(await later.after(90_000).touch(token=tok))
    b = await kitcn.system.get(await later.after(timedelta(seconds=90)).touch(token=tok))
    for job in (a, b):
        assert job.state.kind == "pending"
        assert before + 89_000 <= job.scheduled_time <= before + 91_000


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf, -math.inf, "5s", True, None])
async def test_after_rejects_negative_non_finite_and_non_numeric_delays(kitcn: KitcnClient, delay) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, targets).schedule.after(delay).touch(token=token())
    assert err.value.code == "BAD_REQUEST"
    assert "delay for targets.touch" in err.value.message


async def test_at_rejects_naive_datetimes(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="naive datetime"):
        await create_caller(kitcn, targets).schedule.at(datetime(2030, 1, 1)).touch(token=token())


async def test_at_in_the_past_runs_at_once(kitcn: KitcnClient) -> None:
    tok = token()
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    job_id = await create_caller(kitcn, targets).schedule.at(past).touch(token=tok)
    job = await wait_state(kitcn, job_id)
    assert job.state.kind == "success"
    assert job.scheduled_time == int(past.timestamp() * 1000)


async def test_at_accepts_milliseconds_and_aware_datetimes(kitcn: KitcnClient) -> None:
    at = create_caller(kitcn, targets).schedule.at
    due = datetime.now(timezone.utc) + timedelta(hours=1)
    ms = int(due.timestamp() * 1000)
    by_ms = await kitcn.system.get(await at(ms).touch(token=token()))
    by_dt = await kitcn.system.get(await at(due.astimezone(timezone(timedelta(hours=5)))).touch(token=token()))
    assert by_ms.scheduled_time == ms
    assert abs(by_dt.scheduled_time - ms) <= 1


@pytest.mark.parametrize("ahead", [timedelta(days=5 * 366 + 2), timedelta(days=10 * 365)])
async def test_more_than_five_years_ahead_is_an_error(kitcn: KitcnClient, ahead: timedelta) -> None:
    schedule = create_caller(kitcn, targets).schedule
    with pytest.raises(CRPCError, match="5 years"):
        await schedule.at(datetime.now(timezone.utc) + ahead).touch(token=token())
    with pytest.raises(CRPCError, match="5 years"):
        await schedule.after(ahead).touch(token=token())


async def test_queries_cannot_be_scheduled(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="queries cannot be scheduled"):
        await create_caller(kitcn, targets).schedule.now.count(token=token())
    with pytest.raises(CRPCError, match="queries cannot be scheduled"):
        await kitcn.scheduler.run_after(0, "shapes.add", {"x": 1, "y": 2})
    with pytest.raises(CRPCError, match="queries cannot be scheduled"):
        await create_caller(kitcn, producers).schedule_query(token=token())


async def test_a_query_cannot_schedule(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="a query cannot schedule"):
        await create_caller(kitcn, producers).query_schedules(token=token())


async def test_unknown_procedure_name_is_not_found(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await kitcn.scheduler.run_after(0, "orders.nope", {})
    assert err.value.code == "NOT_FOUND" and "orders.nope" in err.value.message


async def test_more_than_1000_schedule_calls_fail_and_schedule_nothing(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, producers).schedule_many(token=tok, count=1001)
    assert err.value.code == "BAD_REQUEST" and "1000" in err.value.message
    assert len(RUNS[tok]) == 1000  # the 1001st call is the one that raised
    await settle_visibility(kitcn, tok)
    assert jobs_with_token(await kitcn.system.list(name="targets.take_payload", limit=2000), tok) == []


async def test_more_than_8_mib_of_arguments_fail_and_schedule_nothing(kitcn: KitcnClient) -> None:
    tok = token()
    size = 1024 * 1024 + 512 * 1024  # 1.5 MiB: the sixth call crosses 8 MiB
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, producers).schedule_many(token=tok, count=8, size=size)
    assert err.value.code == "PAYLOAD_TOO_LARGE" and "8388608" in err.value.message
    assert len(RUNS[tok]) == 5
    await settle_visibility(kitcn, tok)
    assert jobs_with_token(await kitcn.system.list(name="targets.take_payload", limit=2000), tok) == []


async def test_one_argument_over_the_payload_limit_is_refused(kitcn: KitcnClient) -> None:
    tok = token()
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, targets).schedule.now.take_payload(token=tok, blob="x" * (2 * 1024 * 1024))
    assert err.value.code == "PAYLOAD_TOO_LARGE" and "targets.take_payload" in err.value.message


async def test_arguments_just_under_the_payload_limit_run(kitcn: KitcnClient) -> None:
    tok = token()
    size = 2 * 1024 * 1024 - 20 * 1024
    job_id = await create_caller(kitcn, targets).schedule.now.take_payload(token=tok, blob="y" * size)
    assert (await wait_state(kitcn, job_id)).state.kind == "success"
    assert RUNS[tok] == [size]


async def test_a_procedure_outside_the_app_cannot_be_scheduled(kitcn: KitcnClient) -> None:
    import types

    from kitcn_temporal import public_mutation

    other = types.ModuleType("other")

    async def orphan(ctx, input: shapes.Point) -> None: ...

    other.orphan = public_mutation.mutation(orphan)  # type: ignore[attr-defined]
    with pytest.raises(CRPCError, match="not part of this app"):
        await create_caller(kitcn, other).schedule.now.orphan(x=1, y=2)

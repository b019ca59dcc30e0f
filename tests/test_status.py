"""docs/semantics.md §5: the ``_scheduled_functions`` table on clients and inside procedures."""

from __future__ import annotations

import pytest

from helpers import settle_visibility, token, wait_state
from kitcn_temporal import CRPCError, KitcnClient, ScheduledFunction, create_caller
from testapp import producers, targets
from testapp.probe import gate, wait_for


async def test_get_unknown_id_is_none(kitcn: KitcnClient) -> None:
    assert await kitcn.system.get("never-scheduled") is None


@pytest.mark.parametrize("bad", ["", "\x00", 7])
async def test_get_malformed_id_is_a_bad_request(kitcn: KitcnClient, bad) -> None:
    with pytest.raises(CRPCError, match="BAD_REQUEST"):
        await kitcn.system.get(bad)


async def test_row_fields_and_camel_case_dump(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.after(100).touch(token=tok)
    pending = await kitcn.system.get(job_id)
    assert isinstance(pending, ScheduledFunction)
    assert pending.completed_time is None
    done = await wait_state(kitcn, job_id)
    assert done.id == job_id and done.name == "targets.touch" and done.args == {"token": tok}
    assert done.completed_time is not None and done.completed_time >= done.scheduled_time
    dumped = done.model_dump(by_alias=True)
    assert dumped["scheduledTime"] == done.scheduled_time
    assert dumped["completedTime"] == done.completed_time
    assert dumped["state"] == {"kind": "success", "error": None}


async def test_failed_row_carries_the_error(kitcn: KitcnClient) -> None:
    job_id = await create_caller(kitcn, targets).schedule.now.developer_error(token=token())
    job = await wait_state(kitcn, job_id)
    assert job.state.model_dump() == {"kind": "failed", "error": "ValueError: bad things"}


async def test_list_filters_by_state_and_name(kitcn: KitcnClient) -> None:
    tok = token()
    schedule = create_caller(kitcn, targets).schedule
    pending = await schedule.after(600_000).touch(token=tok)
    done = await schedule.now.touch(token=tok)
    held = await schedule.now.held_action(token=tok)
    await wait_state(kitcn, done)
    await wait_state(kitcn, held, "inProgress")

    async def listed(state: str, name: str, job_id: str) -> bool:
        rows = await kitcn.system.list(state=state, name=name, limit=1000)
        return any(r.id == job_id for r in rows) and all(r.state.kind == state and r.name == name for r in rows)

    await wait_for(lambda: listed("pending", "targets.touch", pending))
    await wait_for(lambda: listed("success", "targets.touch", done))
    await wait_for(lambda: listed("inProgress", "targets.held_action", held))
    gate(tok).set()
    await kitcn.scheduler.cancel(pending)
    await wait_for(lambda: listed("canceled", "targets.touch", pending))


async def test_list_respects_the_limit(kitcn: KitcnClient) -> None:
    tok = token()
    for _ in range(3):
        await kitcn.scheduler.run_after(0, "targets.touch", {"token": tok})
    await settle_visibility(kitcn, tok)
    assert len(await kitcn.system.list(limit=2)) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state": "done"}, "unknown state 'done'"),
        ({"name": "orders.charge'; drop"}, "invalid procedure name"),
        ({"limit": 0}, "limit must be"),
        ({"limit": True}, "limit must be"),
    ],
)
async def test_list_rejects_bad_filters(kitcn: KitcnClient, kwargs, message) -> None:
    with pytest.raises(CRPCError, match=message) as err:
        await kitcn.system.list(**kwargs)
    assert err.value.code == "BAD_REQUEST"


async def test_procedures_read_the_table_through_ctx_system(kitcn: KitcnClient) -> None:
    tok = token()
    job_id = await create_caller(kitcn, targets).schedule.after(600_000).touch(token=tok)
    row = await create_caller(kitcn, producers).read_job(token=tok, job_id=job_id)
    assert row["id"] == job_id and row["state"] == {"kind": "pending", "error": None}
    assert "scheduledTime" in row
    assert await create_caller(kitcn, producers).read_job(token=tok, job_id="nope") is None
    await kitcn.scheduler.cancel(job_id)

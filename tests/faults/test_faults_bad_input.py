"""The bad-input matrix: every misuse yields one clear typed error, schedules nothing, and the
worker keeps serving.

One table of cases across the scheduler, callers, procedures (run on a worker process), job
ids and the status table, crons and the command line. Each case asserts the error's type
(and code), that its message names the culprit, that no job id handed out before the failure
exists (strongly consistent) and no other job appeared on the app's task queue (visibility,
settled by a sentinel job), that no effect was written, and that the worker still runs a job.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from faultapp import misuse, work
from faultkit import FaultApp, Workers, fault_app
from faultmatrix import CASES, Case, CliFailure, Matrix, assert_no_schedule, bad_request, case, cron_case, later
from helpers import token, wait_state
from kitcn_temporal import CronJobs, CRPCError, KitcnClient, create_caller, cron_jobs, private_mutation
from kitcn_temporal.ops._devserver import DevServer
from testapp.probe import wait_for

MIB = 1024 * 1024


@private_mutation.mutation
async def outside_the_app(ctx) -> None:
    """Declared here, so not part of the fault app."""


# -- the scheduler, from a client ---------------------------------------------------------


@bad_request("invalid arguments for misuse.typed", "qty")
async def wrong_argument_type(m: Matrix) -> None:
    await later(m).now.typed(order_id=m.token, qty="many")


@bad_request("invalid arguments for misuse.typed", "order_id: Field required")
async def missing_argument(m: Matrix) -> None:
    await later(m).now.typed(qty=1)


@bad_request("arguments of misuse.typed must be a OrderIn, a dict or keyword arguments, not list")
async def arguments_not_a_mapping(m: Matrix) -> None:
    await m.kitcn.scheduler.run_after(0, "misuse.typed", [m.token, 1])


@bad_request("misuse.typed", "either as one model/dict or as keywords")
async def model_and_keywords_at_once(m: Matrix) -> None:
    await later(m).now.typed({"order_id": m.token, "qty": 1}, qty=2)


@case(CRPCError, "unknown procedure 'misuse.nowhere'", code="NOT_FOUND")
async def unknown_procedure_name(m: Matrix) -> None:
    await m.kitcn.scheduler.run_after(0, "misuse.nowhere", {"token": m.token})


@bad_request("misuse.peek is a query: queries cannot be scheduled")
async def scheduling_a_query(m: Matrix) -> None:
    await later(m).now.peek(token=m.token)


@bad_request("delay for misuse.sink must be finite and >= 0 ms, not -1")
async def negative_delay(m: Matrix) -> None:
    await later(m).after(-1).sink(token=m.token)


@bad_request("delay for misuse.sink must be finite and >= 0 ms, not nan")
async def nan_delay(m: Matrix) -> None:
    await later(m).after(math.nan).sink(token=m.token)


@bad_request("delay for misuse.sink must be finite and >= 0 ms, not inf")
async def infinite_delay(m: Matrix) -> None:
    await later(m).after(math.inf).sink(token=m.token)


@bad_request("delay for misuse.sink must be milliseconds (a number) or a timedelta, not str")
async def delay_of_the_wrong_type(m: Matrix) -> None:
    await later(m).after("5s").sink(token=m.token)  # type: ignore[arg-type]


@bad_request("time for misuse.sink is a naive datetime")
async def naive_datetime(m: Matrix) -> None:
    await later(m).at(datetime(2030, 1, 1)).sink(token=m.token)


@bad_request("time for misuse.sink must be finite, not nan")
async def nan_time(m: Matrix) -> None:
    await later(m).at(math.nan).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def time_more_than_five_years_ahead(m: Matrix) -> None:
    await later(m).at(datetime.now(timezone.utc) + timedelta(days=5 * 366 + 2)).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def delay_more_than_five_years(m: Matrix) -> None:
    await later(m).after(timedelta(days=6 * 365)).sink(token=m.token)


@bad_request("before 2000-01-01: that looks like seconds", "did you mean 1700000000000 (2023-11-14T22:13:20+00:00)?")
async def time_in_seconds(m: Matrix) -> None:
    await later(m).at(1_700_000_000).sink(token=m.token)


@bad_request("time for misuse.sink is -1e+30 ms since the epoch, before 2000-01-01")
async def time_far_before_the_epoch(m: Matrix) -> None:
    await later(m).at(-1e30).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def time_of_1e300(m: Matrix) -> None:
    await later(m).at(1e300).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def delay_of_1e300(m: Matrix) -> None:
    await later(m).after(1e300).sink(token=m.token)


@bad_request("delay for misuse.sink is out of range: a number of 401 digits")
async def delay_too_large_for_a_float(m: Matrix) -> None:
    await later(m).after(10**400).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def delay_of_timedelta_max(m: Matrix) -> None:
    await later(m).after(timedelta.max).sink(token=m.token)


@bad_request("time for misuse.sink is out of range: 0001-01-01T00:00:00+05:00")
async def datetime_before_the_first_year(m: Matrix) -> None:
    await later(m).at(datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))).sink(token=m.token)


@bad_request("misuse.sink cannot be scheduled more than 5 years ahead")
async def datetime_of_the_last_year(m: Matrix) -> None:
    await later(m).at(datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))).sink(token=m.token)


@case(CRPCError, "arguments of misuse.sink are", "Temporal's payload limit", code="PAYLOAD_TOO_LARGE")
async def one_argument_over_the_payload_limit(m: Matrix) -> None:
    await later(m).now.sink(token=m.token, blob="x" * (2 * MIB))


@bad_request("arguments of misuse.sink cannot be serialised to JSON")
async def non_serialisable_argument(m: Matrix) -> None:
    await later(m).now.sink(token=m.token, extra=object())


@case(CRPCError, "misuse.sink is a private procedure", code="FORBIDDEN")
async def private_procedure_from_a_public_client(m: Matrix) -> None:
    public = KitcnClient(m.fault.client, m.fault.app, public_only=True)
    await create_caller(public, misuse).schedule.now.sink(token=m.token)


# -- callers ------------------------------------------------------------------------------


@case(AttributeError, "faultapp.misuse has no procedure 'nowhere'")
async def unknown_procedure_on_a_caller(m: Matrix) -> None:
    await later(m).now.nowhere(token=m.token)


@case(AttributeError, "record is an action: call it with caller.actions.record(...)")
async def action_called_as_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, work).record(ledger=str(m.fault.ledger))


@case(AttributeError, "sink is a mutation: call it as caller.sink(...)")
async def mutation_called_as_an_action(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).actions.sink(token=m.token)


@case(TypeError, "create_caller() takes a module of procedures")
async def caller_of_something_else(m: Matrix) -> None:
    await create_caller(m.kitcn, "faultapp.misuse").schedule.now.sink(token=m.token)  # type: ignore[arg-type]


@bad_request("the auth identity must be JSON-serialisable")
async def identity_not_serialisable(m: Matrix) -> None:
    await create_caller(m.kitcn.with_auth({"user": object()}), misuse).sink(token=m.token)


@bad_request("misuse.sink is a mutation: a query can call only queries")
async def query_calling_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).query_calls_mutation(token=m.token)


@bad_request("work.record is an action: actions can be called only from an action or a client")
async def mutation_calling_an_action(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).mutation_calls_action(token=m.token)


@case(CRPCError, "arguments of misuse.sink are", "payload limit", code="PAYLOAD_TOO_LARGE")
async def direct_call_over_the_payload_limit(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).sink(token=m.token, blob="x" * (2 * MIB))


# -- procedures, on the worker ------------------------------------------------------------


@case(CRPCError, "misuse.wrong_output returned an invalid value", code="INTERNAL_SERVER_ERROR")
async def handler_returning_the_wrong_type(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).wrong_output(token=m.token)


@case(CRPCError, "the output of misuse.unserialisable_output cannot be serialised", code="INTERNAL_SERVER_ERROR")
async def handler_returning_something_unserialisable(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).unserialisable_output(token=m.token)


@case(CRPCError, "misuse.guarded: its middleware refuses every caller", code="FORBIDDEN")
async def middleware_refusing(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).guarded(token=m.token)


@bad_request("a query cannot schedule functions")
async def query_scheduling(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).query_schedules(token=m.token, ids_file=m.ids_file)


@bad_request("too many schedule calls", "at most 1000")
async def one_thousand_and_one_schedule_calls(m: Matrix) -> None:
    try:
        await create_caller(m.kitcn, misuse).schedule_many(token=m.token, ids_file=m.ids_file, count=1001)
    finally:
        assert len(m.recorded_ids()) == 1000


@case(CRPCError, "over the 8388608-byte limit", code="PAYLOAD_TOO_LARGE")
async def more_than_8_mib_of_arguments(m: Matrix) -> None:
    try:
        await create_caller(m.kitcn, misuse).schedule_many(
            token=m.token, ids_file=m.ids_file, count=8, size=3 * MIB // 2
        )
    finally:
        assert len(m.recorded_ids()) == 5  # the sixth call crosses 8 MiB


@bad_request("invalid arguments for misuse.typed", "qty")
async def bad_arguments_scheduled_from_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).schedule_then_bad_args(token=m.token, ids_file=m.ids_file)


@case(CRPCError, "unknown procedure 'misuse.nowhere'", code="NOT_FOUND")
async def unknown_name_scheduled_from_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).schedule_then_unknown(token=m.token, ids_file=m.ids_file)


@case(CRPCError, "no scheduled function has id 'no-such-job-", code="NOT_FOUND")
async def unknown_job_canceled_from_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).schedule_then_cancel_unknown(token=m.token, ids_file=m.ids_file)


@bad_request("time for misuse.sink is a naive datetime")
async def naive_datetime_from_a_mutation(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).schedule_then_naive(token=m.token, ids_file=m.ids_file)


@case(CRPCError, "ValueError: misuse.schedule_then_raise changed its mind", code="INTERNAL_SERVER_ERROR")
async def mutation_raising_after_scheduling(m: Matrix) -> None:
    await create_caller(m.kitcn, misuse).schedule_then_raise(token=m.token, ids_file=m.ids_file)


# -- job ids and the status table ---------------------------------------------------------


@case(CRPCError, "no scheduled function has id 'no-such-job'", code="NOT_FOUND")
async def cancel_of_an_unknown_job(m: Matrix) -> None:
    await later(m).cancel("no-such-job")


@bad_request("malformed job id 'tab\\there'")
async def cancel_of_a_malformed_job_id(m: Matrix) -> None:
    await later(m).cancel("tab\there")


@bad_request("a job id is a string, not int")
async def cancel_of_a_job_id_that_is_not_a_string(m: Matrix) -> None:
    await m.kitcn.scheduler.cancel(42)  # type: ignore[arg-type]


@bad_request("malformed job id ''")
async def get_of_an_empty_job_id(m: Matrix) -> None:
    await m.kitcn.system.get("")


@bad_request("unknown state 'done'", "pending")
async def list_of_an_unknown_state(m: Matrix) -> None:
    await m.kitcn.system.list(state="done")


@bad_request("invalid procedure name 'misuse sink'")
async def list_of_a_malformed_name(m: Matrix) -> None:
    await m.kitcn.system.list(name="misuse sink")


@bad_request("limit must be an integer from 1 to 10000, not 0")
async def list_with_a_zero_limit(m: Matrix) -> None:
    await m.kitcn.system.list(limit=0)


# -- crons --------------------------------------------------------------------------------


@cron_case(ValueError, "is declared twice", left=1)
def duplicate_cron(crons: CronJobs, m: Matrix) -> None:
    crons.interval(m.token, {"hours": 1}, misuse.sink, {"token": m.token})
    crons.interval(m.token, {"hours": 2}, misuse.sink, {"token": m.token})


@cron_case(ValueError, "invalid cron expression '61 * * * *'")
def malformed_cron_expression(crons: CronJobs, m: Matrix) -> None:
    crons.cron(m.token, "61 * * * *", misuse.sink, {"token": m.token})


@cron_case(ValueError, "the interval must be positive")
def zero_interval(crons: CronJobs, m: Matrix) -> None:
    crons.interval(m.token, {"seconds": 0}, misuse.sink, {"token": m.token})


@cron_case(ValueError, "is a query, and queries cannot be scheduled")
def cron_of_a_query(crons: CronJobs, m: Matrix) -> None:
    crons.interval(m.token, {"hours": 1}, misuse.peek, {"token": m.token})


@cron_case(TypeError, "the target must be a mutation or an action")
def cron_of_something_else(crons: CronJobs, m: Matrix) -> None:
    crons.interval(m.token, {"hours": 1}, "misuse.sink", {"token": m.token})


@cron_case(ValueError, "invalid arguments for", "token: Field required")
def cron_with_bad_arguments(crons: CronJobs, m: Matrix) -> None:
    crons.daily(m.token, {"hour_utc": 9, "minute_utc": 0}, misuse.sink, {"blob": "no token"})


@case(ValueError, "not part of this app")
async def cron_sync_of_a_procedure_outside_the_app(m: Matrix) -> None:
    crons = cron_jobs()
    crons.interval(m.token, {"hours": 1}, misuse.sink, {"token": m.token})
    crons.interval(f"{m.token} foreign", {"hours": 1}, outside_the_app)
    try:
        await crons.sync(m.kitcn)
    finally:
        await assert_no_schedule(m, m.token)


# -- the command line ---------------------------------------------------------------------


@case(CliFailure, "unknown procedure 'misuse.nowhere'")
async def cli_unknown_procedure(m: Matrix) -> None:
    await m.cli("schedule", "misuse.nowhere", "--after", "1s", "--args", "{}")


@case(CliFailure, "invalid arguments for misuse.typed", "qty")
async def cli_wrong_argument_type(m: Matrix) -> None:
    await m.cli("schedule", "misuse.typed", "--after", "1s", "--args", '{"order_id": "o", "qty": "many"}')


@case(CliFailure, "--after '-5s' must be >= 0")
async def cli_negative_delay(m: Matrix) -> None:
    await m.cli("schedule", "misuse.sink", "--after", "-5s", "--args", f'{{"token": "{m.token}"}}')


@case(CliFailure, "time for misuse.sink is 1700000000 ms since the epoch", "looks like seconds")
async def cli_time_in_seconds(m: Matrix) -> None:
    await m.cli("schedule", "misuse.sink", "--at", "1700000000", "--args", f'{{"token": "{m.token}"}}')


@case(CliFailure, "'garbage address' is not a Temporal address", "expected host:port")
async def cli_garbage_address(m: Matrix) -> None:
    await m.cli("schedule", "misuse.sink", "--after", "1s", "--address", "garbage address", "--args", "{}")


@case(CliFailure, "namespace 'nowhere' does not exist at ")
async def cli_cancel_in_an_unknown_namespace(m: Matrix) -> None:
    await m.cli("jobs", "cancel", "some-job", "--namespace", "nowhere")


@case(CliFailure, "has no timezone")
async def cli_naive_time(m: Matrix) -> None:
    await m.cli("schedule", "misuse.sink", "--at", "2030-01-01T09:00:00", "--args", f'{{"token": "{m.token}"}}')


@case(CliFailure, "misuse.sink cannot be scheduled more than 5 years ahead")
async def cli_time_more_than_five_years_ahead(m: Matrix) -> None:
    await m.cli("schedule", "misuse.sink", "--at", "2100-01-01T00:00:00Z", "--args", f'{{"token": "{m.token}"}}')


@case(CliFailure, "no scheduled function has id 'no-such-job'")
async def cli_cancel_of_an_unknown_job(m: Matrix) -> None:
    await m.cli("jobs", "cancel", "no-such-job")


@case(CliFailure, "misuse.wrong_output returned an invalid value")
async def cli_handler_returning_the_wrong_type(m: Matrix) -> None:
    await m.cli("run", "misuse.wrong_output", "--args", f'{{"token": "{m.token}"}}')


# -- the test -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def served(
    temporal_server: DevServer, client: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultApp]:
    """The fault app with a worker process serving it."""
    async with fault_app(temporal_server.address, tmp_path_factory.mktemp("matrix")) as fault:
        workers = Workers(temporal_server.address, fault)
        try:
            await workers.start()
            yield fault
        finally:
            await workers.stop_all()


def test_the_matrix_covers_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
async def test_bad_input_yields_one_clear_error_schedules_nothing_and_the_worker_keeps_serving(
    served: FaultApp, temporal_server: DevServer, bad: Case
) -> None:
    m = Matrix(served, temporal_server.address, token())
    before = await m.jobs_on_queue()

    with pytest.raises(bad.error) as caught:
        await bad.run(m)
    bad.check(caught.value)

    handed_out = m.recorded_ids()
    found = await asyncio.gather(*(m.kitcn.system.get(job_id) for job_id in handed_out))
    assert [row for row in found if row is not None] == []
    sentinel = await m.kitcn.scheduler.run_after(0, "work.bump", {"token": m.token})
    assert (await wait_state(m.kitcn, sentinel)).state.kind == "success"
    assert await served.effects(m.token) == {sentinel: 1}
    await wait_for(lambda: m.jobs_on_queue(f" AND WorkflowId = '{sentinel}'"), timeout=30)
    assert await m.jobs_on_queue() == before + 1

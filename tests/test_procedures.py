"""docs/semantics.md §2: builders, validation, middleware, handlers and errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from temporalio.common import RetryPolicy

from kitcn_temporal import (
    ERROR_CODES,
    CRPCError,
    KitcnClient,
    Procedure,
    create_caller,
    init_crpc,
    private_mutation,
    public_mutation,
    public_query,
)
from testapp import producers, shapes, targets


class In(BaseModel):
    n: int


def test_builders_are_immutable() -> None:
    base = public_mutation
    derived = base.input(In).meta(a=1).internal()
    assert base._input is None and base._meta == {} and base._internal is False
    assert derived._input is In and derived._meta == {"a": 1} and derived._internal is True
    again = derived.meta(b=2)
    assert derived._meta == {"a": 1} and again._meta == {"a": 1, "b": 2}


def test_ready_made_builders_are_public_or_private() -> None:
    async def handler(ctx, input: In) -> None: ...

    assert private_mutation.mutation(handler).internal is True
    assert public_mutation.mutation(handler).internal is False


def test_terminals_are_decorators_returning_procedures() -> None:
    @public_query.input(In).query
    async def q(ctx, input: In) -> int:
        return input.n

    assert isinstance(q, Procedure) and q.kind == "query" and q.input_model is In
    with pytest.raises(TypeError, match="not called directly"):
        q(None, In(n=1))


def test_a_builder_ends_with_its_own_kind() -> None:
    with pytest.raises(TypeError, match=r"end it with \.mutation"):
        public_mutation.query(lambda ctx: None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: public_mutation.input(dict), "pydantic BaseModel"),  # type: ignore[arg-type]
        (lambda: public_mutation.timeout(0), "positive timedelta"),  # type: ignore[arg-type]
        (lambda: public_mutation.retry("often"), "RetryPolicy or exception types"),  # type: ignore[arg-type]
        (lambda: public_mutation.name("no spaces allowed"), "invalid procedure name"),
        (lambda: public_mutation.use(42), "async function"),  # type: ignore[arg-type]
        (lambda: public_mutation.mutation(lambda: None), "must take"),
    ],
)
def test_bad_declarations_fail_clearly(build, message) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        build()


def test_retry_takes_a_policy_and_transient_errors() -> None:
    policy = RetryPolicy(maximum_attempts=4)
    built = public_mutation.retry(policy, KeyError).retry(LookupError)
    assert built._retry is policy and built._transient == (KeyError, LookupError)


def test_init_crpc_gives_builders_to_derive_from() -> None:
    c = init_crpc(service="billing")

    async def mw(ctx, next):
        return await next(ctx)

    auth = c.mutation.use(mw)
    assert c.mutation._middleware == () and auth._middleware == (mw,)
    assert auth._meta == {"service": "billing"}


def test_crpc_error_codes() -> None:
    for code in (
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "NOT_FOUND",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "TOO_MANY_REQUESTS",
        "INTERNAL_SERVER_ERROR",
    ):
        assert code in ERROR_CODES
    with pytest.raises(ValueError, match="unknown CRPCError code"):
        CRPCError("TEAPOT", "no")
    err = CRPCError("CONFLICT", "taken", {"id": 1})
    assert str(err) == "CONFLICT: taken" and err.data == {"id": 1}


async def test_input_is_validated_before_the_handler(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, shapes).add(x="three", y=1)
    assert err.value.code == "BAD_REQUEST"
    assert "shapes.add" in err.value.message and "x:" in err.value.message


async def test_the_annotation_is_the_input_model_without_input(kitcn: KitcnClient) -> None:
    assert shapes.add.input_model is shapes.Point
    assert (await create_caller(kitcn, shapes).add(shapes.Point(x=1, y=2))).total == 3


async def test_output_is_validated_after_the_handler(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError) as err:
        await create_caller(kitcn, shapes).wrong_output(x=1, y=2)
    assert err.value.code == "INTERNAL_SERVER_ERROR"
    assert "shapes.wrong_output returned an invalid value" in err.value.message


async def test_procedures_without_arguments(kitcn: KitcnClient) -> None:
    caller = create_caller(kitcn, shapes)
    assert await caller.no_args() == "nothing needed"
    with pytest.raises(CRPCError, match="takes no arguments"):
        await caller.no_args(extra=1)


async def test_name_override(kitcn: KitcnClient) -> None:
    assert kitcn.app.name_of(shapes.renamed) == "custom.renamed"
    assert await kitcn.run("custom.renamed", {"x": 7, "y": 0}) == 7


async def test_middleware_extends_the_context_and_sees_meta(kitcn: KitcnClient) -> None:
    assert await create_caller(kitcn, shapes).stamped() == "core/maps"


async def test_middleware_that_never_calls_next_is_an_error(kitcn: KitcnClient) -> None:
    with pytest.raises(CRPCError, match="without calling next"):
        await create_caller(kitcn, shapes).swallowed()


async def test_caller_rules_inside_procedures(kitcn: KitcnClient) -> None:
    caller = create_caller(kitcn, producers)
    with pytest.raises(CRPCError, match="a query can call only queries"):
        await caller.query_calls_mutation(token="t")
    with pytest.raises(CRPCError, match="actions can be called only from an action or a client"):
        await caller.mutation_calls_action(token="t")
    result = await caller.actions.action_calls_all(token="caller-rules")
    assert result == {"count": 0, "touch": 1, "action": "done"}


def test_caller_attribute_errors_name_the_module(kitcn: KitcnClient) -> None:
    caller = create_caller(kitcn, targets)
    with pytest.raises(AttributeError, match="has no procedure 'nope'"):
        _ = caller.nope
    with pytest.raises(AttributeError, match="is an action"):
        _ = caller.touch_action
    with pytest.raises(AttributeError, match="is a mutation"):
        _ = caller.actions.touch
    with pytest.raises(TypeError, match="takes a module"):
        create_caller(kitcn, "targets")  # type: ignore[arg-type]

"""The argument codec: a procedure's input and output checked and turned into JSON-ready data.

Layer: procedures. Producers use it at the schedule call (a bad call
raises and schedules nothing), the runtime around every handler.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

from .._errors import CRPCError
from .._wire import MAX_JOB_ARGS_BYTES
from ._procedures import Procedure


def validate_input(proc: Procedure, name: str, args: Any) -> BaseModel | None:
    """The handler's input: ``args`` (a model, a dict or ``None``) checked against the input model."""
    model = proc.input_model
    if model is None:
        if args is None or args == {}:
            return None
        raise CRPCError("BAD_REQUEST", f"{name} takes no arguments, got {_describe(args)}")
    if isinstance(args, model):
        candidate: Any = args.model_dump()
    elif isinstance(args, BaseModel):
        candidate = args.model_dump()
    elif args is None:
        candidate = {}
    elif isinstance(args, dict):
        candidate = args
    else:
        raise CRPCError(
            "BAD_REQUEST",
            f"arguments of {name} must be a {model.__name__}, a dict or keyword arguments, not {type(args).__name__}",
        )
    try:
        return model.model_validate(candidate)
    except ValidationError as err:
        raise CRPCError(
            "BAD_REQUEST", f"invalid arguments for {name}: {summarize(err)}", {"errors": _errors(err)}
        ) from None


def encode_args(proc: Procedure, name: str, args: Any) -> tuple[dict[str, Any], int]:
    """Validate ``args`` and return them as JSON-ready data, with their encoded size in bytes."""
    value = validate_input(proc, name, args)
    if value is None:
        return {}, 2
    try:
        data = value.model_dump(mode="json")
        size = len(pydantic_core.to_json(data))
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as err:
        raise CRPCError("BAD_REQUEST", f"arguments of {name} cannot be serialised to JSON: {err}") from None
    return data, size


def encode_job_args(proc: Procedure, name: str, args: Any) -> tuple[dict[str, Any], int]:
    """Like :func:`encode_args`, for arguments that travel in one Temporal payload (a job's, a
    cron's, a direct call's): ``CRPCError(PAYLOAD_TOO_LARGE)`` when they cannot fit."""
    payload, size = encode_args(proc, name, args)
    if size > MAX_JOB_ARGS_BYTES:
        raise CRPCError(
            "PAYLOAD_TOO_LARGE",
            f"arguments of {name} are {size} bytes: one job's arguments must fit in "
            f"{MAX_JOB_ARGS_BYTES} bytes (Temporal's payload limit)",
        )
    return payload, size


def encode_output(proc: Procedure, name: str, value: Any) -> Any:
    """The handler's (validated) output as JSON-ready data, for the trip through Temporal."""
    try:
        if proc.output_adapter is not None:
            return proc.output_adapter.dump_python(value, mode="json")
        return pydantic_core.to_jsonable_python(value)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as err:
        raise CRPCError("INTERNAL_SERVER_ERROR", f"the output of {name} cannot be serialised to JSON: {err}") from None


def decode_output(proc: Procedure, value: Any) -> Any:
    """The caller's view of an output that crossed Temporal (models rebuilt)."""
    return value if proc.output_adapter is None else proc.output_adapter.validate_python(value)


def check_output(proc: Procedure, name: str, value: Any) -> Any:
    if proc.output_adapter is None:
        return value
    try:
        return proc.output_adapter.validate_python(value)
    except ValidationError as err:
        raise CRPCError("INTERNAL_SERVER_ERROR", f"{name} returned an invalid value: {summarize(err)}") from None


def summarize(err: ValidationError) -> str:
    """One line from a pydantic error: ``order_id: Field required; qty: Input should be ...``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(input)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _errors(err: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in err.errors()]


def _describe(args: Any) -> str:
    text = repr(args)
    return text if len(text) <= 80 else text[:77] + "..."

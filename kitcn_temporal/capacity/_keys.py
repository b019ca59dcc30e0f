"""The key of a run under a procedure's ``.concurrency(n, key=fn)``, computed at the schedule call.

Layer: capacity.
"""

from __future__ import annotations

from typing import Any

from .._errors import CRPCError
from ..procedures._codec import validate_input
from ..procedures._procedures import Procedure

#: A concurrency key is shown on the job's row and travels in its spec: keep it short.
MAX_CONCURRENCY_KEY_LENGTH = 200


def concurrency_key(proc: Procedure, name: str, args: Any) -> str | None:
    """``fn(input)`` for ``proc``'s keyed cap (``None`` without one); ``BAD_REQUEST`` naming the
    procedure when ``fn`` fails or does not return a short ``str``."""
    fn = proc.concurrency_key
    if fn is None:
        return None
    model = validate_input(proc, name, args)
    try:
        key = fn(model)
    except Exception as err:
        raise CRPCError("BAD_REQUEST", f"the concurrency key of {name} could not be computed: {err!r}") from None
    if not isinstance(key, str):
        raise CRPCError(
            "BAD_REQUEST",
            f"the concurrency key function of {name} must return a str, not {type(key).__name__} {key!r}",
        )
    if not key or len(key) > MAX_CONCURRENCY_KEY_LENGTH:
        raise CRPCError(
            "BAD_REQUEST",
            f"the concurrency key of {name} must have 1 to {MAX_CONCURRENCY_KEY_LENGTH} characters, not {len(key)}",
        )
    return key

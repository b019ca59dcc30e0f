"""Checks on the names users give: procedure names and job ids.

Layer: procedures.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import CRPCError

_PROCEDURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
#: Temporal's limit on a workflow id, which a job id is.
MAX_JOB_ID_LENGTH = 1000


def check_procedure_name(name: Any) -> str:
    """Return ``name`` if it can name a procedure (``"orders.charge"``), else raise ValueError."""
    if not isinstance(name, str) or not _PROCEDURE_NAME.fullmatch(name) or len(name) > 200:
        raise ValueError(f"invalid procedure name {name!r}: expected dotted identifiers such as 'orders.charge'")
    return name


def check_job_id(job_id: Any) -> str:
    """Return ``job_id`` if it is a well-formed job id, else raise ``CRPCError(BAD_REQUEST)``."""
    if not isinstance(job_id, str):
        raise CRPCError("BAD_REQUEST", f"a job id is a string, not {type(job_id).__name__}")
    if not job_id or len(job_id) > MAX_JOB_ID_LENGTH or not job_id.isprintable():
        raise CRPCError(
            "BAD_REQUEST",
            f"malformed job id {job_id[:80]!r}: expected 1 to {MAX_JOB_ID_LENGTH} printable characters",
        )
    return job_id


#: The longest idempotency key.
MAX_KEY_LENGTH = 200


def check_key(key: Any, name: str, what: str = "key") -> str:
    """``key`` if it can be an idempotency key (or a debounce key: ``what``), else ``CRPCError(BAD_REQUEST)``."""
    if not isinstance(key, str):
        raise CRPCError("BAD_REQUEST", f"the {what} of {name} is a string, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise CRPCError(
            "BAD_REQUEST",
            f"invalid {what} {key[:80]!r} for {name}: expected 1 to {MAX_KEY_LENGTH} printable characters "
            "(no control characters)",
        )
    return key

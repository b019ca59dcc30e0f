"""``CRPCError``: kitcn's typed error, and its trip through Temporal.

Layer: wire formats and errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

ErrorCode = Literal[
    "BAD_REQUEST",
    "PARSE_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_SUPPORTED",
    "TIMEOUT",
    "CONFLICT",
    "PRECONDITION_FAILED",
    "PAYLOAD_TOO_LARGE",
    "UNPROCESSABLE_CONTENT",
    "TOO_MANY_REQUESTS",
    "CLIENT_CLOSED_REQUEST",
    "INTERNAL_SERVER_ERROR",
    "NOT_IMPLEMENTED",
]

#: Every code a :class:`CRPCError` may carry (kitcn's, which are tRPC's).
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)

#: The ``ApplicationError.type`` that marks a CRPCError on the wire.
CRPC_ERROR_TYPE = "CRPCError"


class CRPCError(Exception):
    """An error with a kitcn code, raised by procedures and by this library.

    It crosses Temporal intact: a procedure that raises
    ``CRPCError("NOT_FOUND", "no such order")`` fails its job with that code and
    message, and a direct call through a :class:`~kitcn_temporal.KitcnClient`
    raises the same ``CRPCError`` in the caller.

    :param code: one of :data:`ERROR_CODES`, e.g. ``"BAD_REQUEST"``.
    :param message: one sentence for humans.
    :param data: optional JSON-serialisable details.
    """

    def __init__(self, code: ErrorCode | str, message: str, data: Any = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown CRPCError code {code!r}; expected one of {', '.join(ERROR_CODES)}")
        super().__init__(message)
        self.code: str = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"CRPCError({self.code!r}, {self.message!r})"

    def to_application_error(self) -> ApplicationError:
        """The non-retryable Temporal failure that carries this error."""
        return ApplicationError(
            str(self),
            {"code": self.code, "message": self.message, "data": self.data},
            type=CRPC_ERROR_TYPE,
            non_retryable=True,
            # An expected outcome of the app, not a fault: the SDK logs it at debug level.
            category=ApplicationErrorCategory.BENIGN,
        )

    @classmethod
    def from_application_error(cls, err: ApplicationError) -> CRPCError:
        """Rebuild the CRPCError an activity raised, or wrap any other failure.

        A failure that did not start as a CRPCError becomes
        ``INTERNAL_SERVER_ERROR`` with the original message.
        """
        if err.type == CRPC_ERROR_TYPE:
            details: Sequence[Any] = err.details
            if details and isinstance(details[0], dict) and details[0].get("code") in ERROR_CODES:
                d = details[0]
                return cls(d["code"], str(d.get("message", "")), d.get("data"))
        return cls("INTERNAL_SERVER_ERROR", err.message, {"type": err.type})

    @classmethod
    def from_exception(cls, err: Exception) -> CRPCError:
        """What the caller of a procedure sees when it raised ``err``.

        A CRPCError as it is; a Temporal ``ApplicationError`` as :meth:`from_application_error`
        reads it; anything else ``INTERNAL_SERVER_ERROR`` with :func:`exception_text`: the
        same error, whether the procedure ran in the caller's process or on a worker.
        """
        if isinstance(err, CRPCError):
            return err
        if isinstance(err, ApplicationError):
            return cls.from_application_error(err)
        return cls("INTERNAL_SERVER_ERROR", exception_text(err), {"type": type(err).__name__})


def exception_text(err: BaseException) -> str:
    """``"ValueError: bad things"`` (or the type alone when the message is empty)."""
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class DeclarationError(CRPCError, ValueError):
    """A declaration (a builder's flow-control setting) with a value kitcn cannot accept.

    A ``CRPCError`` with code ``BAD_REQUEST`` that is also a ``ValueError``, like the other
    mistakes a builder refuses.
    """

    def __init__(self, message: str) -> None:
        super().__init__("BAD_REQUEST", message)

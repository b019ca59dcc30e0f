"""Plain ``def`` handlers for the thread-pool tests: one that blocks far past its timeout,
one that records when it started."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from pydantic import BaseModel

from kitcn_temporal import private_mutation

from .probe import RUNS

#: Opened by a test to let its stuck handlers return.
_RELEASES: dict[str, threading.Event] = {}


def release(token: str) -> threading.Event:
    return _RELEASES.setdefault(token, threading.Event())


class TokenIn(BaseModel):
    token: str


@private_mutation.input(TokenIn).timeout(timedelta(seconds=1)).mutation
def stuck(ctx, input: TokenIn) -> None:
    """Blocks (for up to a minute) until the test releases it: every attempt times out."""
    RUNS[input.token].append(("stuck", time.monotonic()))
    release(input.token).wait(60)


@private_mutation.input(TokenIn).mutation
def quick(ctx, input: TokenIn) -> None:
    RUNS[input.token].append(("quick", time.monotonic()))

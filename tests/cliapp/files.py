"""An action another process can watch and release through files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from kitcn_temporal import private_action


class FilesIn(BaseModel):
    #: Created when the action starts.
    started: str
    #: The action waits until this file exists.
    release: str
    #: Created when the action finishes.
    finished: str


@private_action.input(FilesIn).action
async def wait_for_release(ctx, input: FilesIn) -> str:
    Path(input.started).touch()
    while not Path(input.release).exists():
        await asyncio.sleep(0.05)
    Path(input.finished).touch()
    return "released"

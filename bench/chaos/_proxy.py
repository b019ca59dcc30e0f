"""A TCP proxy on loopback between the workers and the Temporal server, which the run cuts and heals.

Two kinds of partition: ``cut()`` aborts every connection (a reset on both sides) and closes
the listening socket, so new connections are refused; ``stall()`` keeps the connections open
but holds every byte (packets lost while TCP keeps retrying: calls hang, nothing is reset).
``heal()`` ends either: it listens again on the same port and lets held bytes through. Only
127.0.0.1 is ever bound or dialled.
"""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"
#: Bytes read at once from either side.
CHUNK = 65536
#: How long a dial to the server may take before the client's connection is dropped.
DIAL_TIMEOUT_S = 2.0


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Cleared while stalled: the pipes hold what they read.
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def cut_now(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        await self.heal()

    async def heal(self) -> None:
        """Let bytes through and listen again (a no-op while healthy)."""
        self._flowing.set()
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)

    async def cut(self) -> int:
        """Refuse new connections and reset every open one; returns how many were reset."""
        if self._server is not None:
            self._server.close()
            self._server = None
        return self.drop()

    def stall(self) -> int:
        """Hold every byte on every connection, open or new; returns how many are open."""
        self._flowing.clear()
        return len(self._writers) // 2

    def drop(self) -> int:
        """Reset every open connection (new ones are still accepted)."""
        writers, self._writers = self._writers, set()
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.target), DIAL_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):  # the server is down: the client sees a reset
            writer.transport.abort()
            return
        if self._server is None:  # cut while dialling
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [self._pipe(reader, up_writer), self._pipe(up_reader, writer)]
        for pipe in pipes:
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

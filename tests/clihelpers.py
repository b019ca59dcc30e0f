"""Running ``kitcn-temporal`` as a separate process, for the command-line tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testapp.probe import wait_for

TESTS = Path(__file__).resolve().parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli_env(address: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TEMPORAL_ADDRESS=address,
        TEMPORAL_NAMESPACE="default",
        TEMPORAL_CONFIG_FILE="/nonexistent/temporal.toml",  # no user config file gets in the way
        PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])),
    )
    env.pop("NO_COLOR", None)
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "kitcn_temporal.cli", *args]


async def cli(address: str, *args: str, cwd: Path = TESTS, timeout: float = 60.0) -> Result:
    """Run ``kitcn-temporal ARGS`` to completion (asynchronously: the suite's worker shares this loop)."""
    process = await asyncio.create_subprocess_exec(
        *cli_args(*args),
        cwd=cwd,
        env=cli_env(address),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@dataclass
class Running:
    """A long-running command (``worker``, ``dev``) with its output in files."""

    process: asyncio.subprocess.Process
    out: Path
    err: Path

    async def wait_output(self, text: str, timeout: float = 60.0) -> str:
        async def shown() -> str | None:
            if self.process.returncode is not None:
                raise AssertionError(f"exited with {self.process.returncode}: {self.err.read_text()}")
            content = self.out.read_text()
            return content if text in content else None

        found: str = await wait_for(shown, timeout=timeout, interval=0.1)
        return found

    async def stop(self, sig: int, timeout: float = 60.0) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def server_processes(port: int) -> list[int]:
    """Pids of ``temporal server start-dev`` processes serving ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone meanwhile
            continue
        if b"start-dev" in args and b"--port" in args and str(port).encode() in args:
            found.append(int(entry.name))
    return found


class Launcher:
    """Starts long-running commands with their output in files under ``directory``."""

    def __init__(self, address: str, directory: Path) -> None:
        self.address = address
        self.directory = directory
        self.started: list[Running] = []

    async def __call__(self, *args: str, cwd: Path = TESTS) -> Running:
        index = len(self.started)
        out, err = self.directory / f"out{index}.txt", self.directory / f"err{index}.txt"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            process = await asyncio.create_subprocess_exec(
                *cli_args(*args), cwd=cwd, env=cli_env(self.address), stdout=out_file, stderr=err_file
            )
        running = Running(process, out, err)
        self.started.append(running)
        return running

    async def kill_all(self) -> None:
        for running in self.started:
            if running.process.returncode is None:
                running.process.kill()
                await running.process.wait()

"""docs/semantics.md §13: ``kitcn_temporal.run(main())`` exits a producer script with its status,
run after run, although the process used a Temporal client (whose runtime can abort the
interpreter at exit, sdk-python#300)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from kitcn_temporal.ops._devserver import DevServer

#: How many times each script runs: the SDK's exit abort hit about one run in three.
RUNS = 5

SCRIPT = """
import sys

from temporalio.client import Client

import kitcn_temporal


async def main():
    client = await Client.connect(sys.argv[1])
    await client.count_workflows()
    print("used the client")
{body}


kitcn_temporal.run(main())
"""

ENDINGS = {
    "returns None": ("    return None", 0),
    "returns an int": ("    return 3", 3),
    "raises SystemExit": ("    raise SystemExit(4)", 4),
    "exits with a message": ("    sys.exit('the input file is empty')", 1),
    "is interrupted": ("    raise KeyboardInterrupt", 130),
    "raises": ("    raise ValueError('the producer broke')", 1),
}


async def run_script(path: Path, address: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(path), address, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_script_exits_with_its_status_on_every_run(
    temporal_server: DevServer, tmp_path: Path, ending: str
) -> None:
    body, status = ENDINGS[ending]
    path = tmp_path / "producer.py"
    path.write_text(SCRIPT.format(body=body))

    results = await asyncio.gather(*(run_script(path, temporal_server.address) for _ in range(RUNS)))

    assert [code for code, _, _ in results] == [status] * RUNS, [err for _, _, err in results]
    assert all(out == "used the client\n" for _, out, _ in results)  # flushed before the exit


async def test_an_uncaught_exception_prints_its_traceback(temporal_server: DevServer, tmp_path: Path) -> None:
    path = tmp_path / "producer.py"
    path.write_text(SCRIPT.format(body=ENDINGS["raises"][0]))
    _, _, err = await run_script(path, temporal_server.address)
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().endswith("ValueError: the producer broke")


async def test_a_message_given_to_sys_exit_is_printed(temporal_server: DevServer, tmp_path: Path) -> None:
    path = tmp_path / "producer.py"
    path.write_text(SCRIPT.format(body=ENDINGS["exits with a message"][0]))
    assert (await run_script(path, temporal_server.address))[2] == "the input file is empty\n"


def test_run_takes_a_coroutine() -> None:
    import kitcn_temporal

    async def main() -> None: ...

    with pytest.raises(TypeError, match=r"takes a coroutine, as in run\(main\(\)\)"):
        kitcn_temporal.run(main)  # type: ignore[arg-type]

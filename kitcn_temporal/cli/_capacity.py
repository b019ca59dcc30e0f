"""``jobs pause NAME``, ``jobs resume NAME``, ``jobs paused``: the namespace's pauses.

Layer: command line.
"""

from __future__ import annotations

import argparse

from temporalio.client import Client

from .._client import KitcnClient
from .._errors import CRPCError
from ..capacity._slots import paused_names
from ._connect import CliError, connect, connect_config, load_app
from ._output import print_json


async def jobs_pause(args: argparse.Namespace) -> int:
    """``jobs pause NAME``: the function's due jobs and cron runs wait until it is resumed."""
    return await _switch(args, pause=True)


async def jobs_resume(args: argparse.Namespace) -> int:
    """``jobs resume NAME``: its waiting jobs start, by priority, fairness, then due time."""
    return await _switch(args, pause=False)


async def jobs_paused(args: argparse.Namespace) -> int:
    """``jobs paused``: the paused functions of the namespace."""
    app = load_app(args)
    kitcn = KitcnClient(await connect(connect_config(args), app), app)
    names = await kitcn.system.paused()
    if args.json:
        print_json(names)
    else:
        print("\n".join(names) if names else "no paused functions")
    return 0


async def _switch(args: argparse.Namespace, *, pause: bool) -> int:
    app = load_app(args)
    kitcn = KitcnClient(await connect(connect_config(args), app), app)
    try:
        await (kitcn.system.pause if pause else kitcn.system.resume)(args.name)
    except CRPCError as err:
        raise CliError(err.message) from None
    if args.json:
        print_json({"name": args.name, "paused": pause})
    else:
        print(f"{args.name} {'paused: its due jobs and cron runs wait' if pause else 'resumed'}")
    return 0


async def paused_note(client: Client, names: set[str]) -> str | None:
    """A note naming which of ``names`` are paused (``jobs list``, ``crons list``), or ``None``."""
    paused = sorted(set(await paused_names(client, "")) & names)
    return f"paused: {', '.join(paused)} (their due jobs wait until resumed)" if paused else None

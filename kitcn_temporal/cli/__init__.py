"""``kitcn-temporal``: the command line, in one place (entry point :func:`main`).

Layer: command line: the top of the package; nothing imports it.
"""

from ._main import build_parser, main, run_cli

__all__ = ["build_parser", "main", "run_cli"]

"""``kitcn_temporal.run(main())``: run a script's asyncio entry point and exit with its status.

A process that used a Temporal client or worker can abort at interpreter exit (temporalio's
sdk-python#300: ``Fatal Python error: PyGILState_Release``, exit status 134, about one run in
three): the status a script meant is lost. :func:`run` leaves before that point, as the
``kitcn-temporal`` command does: it flushes what the process wrote, runs the ``atexit``
handlers, then ends the process with ``os._exit``.

Layer: operations.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, NoReturn

#: Exit status of a script stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED_EXIT = 130


def run(main: Coroutine[Any, Any, object]) -> NoReturn:
    """Run ``main`` (``asyncio.run``) and exit the process with its status.

    ``kitcn_temporal.run(main())`` at the bottom of a producer script, in place of
    ``asyncio.run(main())``. The status: ``main`` returns ``None`` -> 0, an ``int`` -> that;
    ``SystemExit`` (``sys.exit(...)``) keeps its meaning; ``KeyboardInterrupt`` -> 130; any
    other uncaught exception prints its traceback on stderr -> 1. Standard streams and logging
    handlers are flushed and ``atexit`` handlers run; non-daemon threads still running are not
    waited for.
    """
    if not inspect.iscoroutine(main):
        raise TypeError(f"kitcn_temporal.run() takes a coroutine, as in run(main()), not {main!r}")
    try:
        status = exit_status(asyncio.run(main))
    except SystemExit as exit_:
        status = exit_status(exit_.code)
    except KeyboardInterrupt:
        status = INTERRUPTED_EXIT
    except BaseException:  # what the interpreter would do with it, minus the abort at exit
        traceback.print_exc()
        status = 1
    exit_now(status)


def exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` gives: ``None`` -> 0, an int -> it, else printed -> 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(status: int) -> NoReturn:
    """Flush, run the ``atexit`` handlers, and end the process with ``status`` at once.

    The interpreter's own exit, where the Temporal SDK's runtime can abort, never runs.
    """
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)

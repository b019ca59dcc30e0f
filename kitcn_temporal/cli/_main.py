"""``kitcn-temporal``: the argument parser and the entry point.

Layer: command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from temporalio.service import RPCError

from .._app import DEFAULT_TASK_QUEUE
from .._errors import CRPCError
from .._wire import STATE_KINDS
from ..ops._encryption import EncryptionKeyError, missing_key_error
from ..ops._script import exit_now, exit_status
from . import _capacity, _commands, _crons, _serve
from ._connect import CliError
from ._parse import UsageError, join_signed_values

PROG = "kitcn-temporal"
DESCRIPTION = (
    "kitcn's procedures and scheduler on Temporal. `dev` runs everything locally; `worker` serves "
    "an app in production; `setup` prepares a namespace; `crons`, `jobs`, `run` and `schedule` "
    "inspect and drive an app. Connection settings come from Temporal's environment configuration "
    "(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, profiles), overridable with "
    "--address and --namespace."
)
#: Exit status of a mistake in the command line itself.
USAGE_EXIT = 2
#: Exit status when interrupted before a graceful stop was possible.
INTERRUPTED_EXIT = 130
#: Exit status when stdout was closed by its reader (as for SIGPIPE).
BROKEN_PIPE_EXIT = 141


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake as one line (argparse prints the whole usage by default)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``kitcn-temporal`` argument parser."""
    parser = _Parser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(group: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
        sub: argparse.ArgumentParser = group.add_parser(name, help=help, description=help)
        return sub

    dev = command(commands, "dev", "run Temporal's dev server (kept in .kitcn/), set up, sync crons, serve the app")
    dev.epilog = "dev serves its own server on 127.0.0.1:PORT, namespace default: TEMPORAL_* settings do not apply."
    _app_options(dev)
    _crons_option(dev)
    dev.add_argument("--port", type=_port, default=7233, help="the server's gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=_port, help="the web UI's port (default: port + 1000)")
    dev.add_argument(
        "--codec-port",
        type=_port,
        help="with KITCN_ENCRYPTION_KEYS set: the codec endpoint port the UI decodes with (default UI port + 1)",
    )
    _serve_options(dev, 5.0, "127.0.0.1")
    dev.set_defaults(handler=_serve.dev)

    worker = command(commands, "worker", "serve the app's procedures and jobs (a production worker)")
    _connection_options(worker)
    _app_options(worker)
    _crons_option(worker)
    _serve_options(worker, 30.0, "0.0.0.0")
    worker.set_defaults(handler=_serve.worker)

    codec = command(
        commands, "codec-server", "serve Temporal's remote codec endpoint for KITCN_ENCRYPTION_KEYS (the UI decodes)"
    )
    codec.add_argument("--port", type=_port, default=8081, help="the port (default 8081)")
    codec.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    codec.add_argument(
        "--ui-origin",
        action="append",
        metavar="URL",
        help="a browser origin allowed to call it, e.g. http://localhost:8233 (repeatable; '*' for any; "
        "default http://localhost:8233 and http://127.0.0.1:8233)",
    )
    codec.set_defaults(handler=_serve.codec_server)

    setup = command(commands, "setup", "give the namespace the job search attributes and 7-day retention")
    _connection_options(setup)
    _json_option(setup)
    setup.set_defaults(handler=_commands.setup)

    crons = command(commands, "crons", "the app's crons (Temporal schedules)")
    crons_commands = crons.add_subparsers(dest="crons_command", metavar="COMMAND", required=True)
    for name, help, handler in (
        ("sync", "make Temporal's schedules match the declared crons", _crons.sync),
        ("list", "the declared and runtime crons with their spec, next runs and last run", _crons.list_),
    ):
        sub = command(crons_commands, name, help)
        _connection_options(sub)
        _app_options(sub)
        _crons_option(sub)
        _json_option(sub)
        sub.set_defaults(handler=handler)
    backfill = command(
        crons_commands, "backfill", "run a cron once now for each of its times from --start up to --end (excluded)"
    )
    backfill.add_argument("name", metavar="NAME", help="the cron, declared (and synced) or registered at runtime")
    backfill.add_argument("--start", metavar="TIME", required=True, help="ISO 8601 time with a timezone: included")
    backfill.add_argument("--end", metavar="TIME", required=True, help="ISO 8601 time with a timezone: excluded")
    _connection_options(backfill)
    _app_options(backfill)
    _json_option(backfill)
    backfill.set_defaults(handler=_crons.backfill)

    jobs = command(commands, "jobs", "the _scheduled_functions table")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True)
    listing = command(jobs_commands, "list", "jobs, most recent first")
    listing.add_argument("--state", choices=STATE_KINDS, help="only jobs in this state")
    listing.add_argument("--name", help="only jobs of this procedure, e.g. orders.charge")
    listing.add_argument("--limit", type=_positive_int, help="at most this many jobs (default 100)")
    listing.add_argument("--all", action="store_true", help="every job, page after page")
    listing.add_argument("--cursor", help="continue where a previous `jobs list` stopped (it prints the cursor)")
    listing.set_defaults(handler=_commands.jobs_list)
    get = command(jobs_commands, "get", "one job")
    get.set_defaults(handler=_commands.jobs_get)
    cancel = command(
        jobs_commands,
        "cancel",
        "cancel a job, or every job matching --name/--state (pending -> canceled; a running action keeps running)",
    )
    cancel.add_argument("id", metavar="ID", nargs="?", help="the job id (or --name / --state for many)")
    cancel.add_argument("--name", help="cancel every job of this procedure (with --state, default pending)")
    cancel.add_argument("--state", choices=("pending", "inProgress"), help="cancel every job in this state")
    cancel.add_argument("--yes", action="store_true", help="cancel many without asking")
    cancel.set_defaults(handler=_commands.jobs_cancel)
    get.add_argument("id", metavar="ID", help="the job id")
    retry = command(jobs_commands, "retry", "schedule a failed job again (its function and arguments), print its id")
    retry.add_argument("id", metavar="ID", help="the failed job's id")
    _app_options(retry)
    retry.set_defaults(handler=_commands.jobs_retry)
    pause = command(jobs_commands, "pause", "pause a function: its due jobs and cron runs wait (running ones finish)")
    resume = command(jobs_commands, "resume", "resume a paused function: its waiting jobs start")
    for sub, handler in ((pause, _capacity.jobs_pause), (resume, _capacity.jobs_resume)):
        sub.add_argument("name", metavar="NAME", help="the procedure, e.g. orders.charge")
        sub.set_defaults(handler=handler)
    paused = command(jobs_commands, "paused", "the paused functions of the namespace")
    paused.set_defaults(handler=_capacity.jobs_paused)
    for sub in (pause, resume, paused):
        _app_options(sub)
    for sub in (listing, get, cancel, retry, pause, resume, paused):
        _connection_options(sub)
        _json_option(sub)

    run = command(commands, "run", "call a procedure (queries and mutations run here) and print its output")
    run.set_defaults(handler=_commands.run)
    schedule = command(commands, "schedule", "schedule a procedure and print its job")
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--after", metavar="DELAY", help="delay: 5s, 1500ms, 2m, 1h, 1d or a number of ms")
    when.add_argument("--at", metavar="TIME", help="ISO 8601 time with a timezone, or ms since the epoch")
    schedule.add_argument("--key", help="an idempotency key: the same key always gives the same job")
    schedule.add_argument("--priority", type=int, metavar="N", help="task priority, 1 (first) to 5 (last)")
    schedule.set_defaults(handler=_commands.schedule)
    for sub in (run, schedule):
        sub.add_argument("name", metavar="NAME", help="the procedure, e.g. orders.charge")
        sub.add_argument("--args", metavar="JSON", help="the arguments as a JSON object")
        _connection_options(sub)
        _app_options(sub)
        _json_option(sub)
    return parser


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: Temporal's env config)")
    group.add_argument("--address", help="host:port of the Temporal frontend (TEMPORAL_ADDRESS)")
    group.add_argument("--namespace", help="the namespace (TEMPORAL_NAMESPACE)")
    group.add_argument("--profile", help="the env config profile (TEMPORAL_PROFILE)")


def _app_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("app")
    group.add_argument("--app", default="activities", help="the app package, imported from here (default activities)")
    group.add_argument("--task-queue", help=f"the task queue (default: the app's, {DEFAULT_TASK_QUEUE!r})")
    group.add_argument(
        "--app-name",
        metavar="NAME",
        help="the app's identity for its crons in a shared namespace (default: the task queue)",
    )
    group.add_argument("--database", metavar="URL", help="SQLAlchemy URL for exactly-once mutations")


def _crons_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--crons",
        metavar="MODULE:ATTR",
        help="the cron declarations (default: workflows.crons:crons if that module exists; '' for none)",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _serve_options(parser: argparse.ArgumentParser, default: float, metrics_host: str) -> None:
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics (the SDK's and kitcn's) on http://HOST:PORT/metrics",
    )
    parser.add_argument(
        "--metrics-host",
        default=metrics_host,
        metavar="HOST",
        help=f"the address the metrics endpoint binds (default {metrics_host})",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, how long running procedures may take to finish (default {default:g})",
    )
    group = parser.add_argument_group("worker slots (what runs at once on this worker)")
    group.add_argument(
        "--max-workflow-tasks",
        type=_at_least(2, "a worker that caches workflows needs 2"),
        metavar="N",
        help="workflow task slots (default: twice the local activity slots)",
    )
    group.add_argument("--max-activities", type=_positive_int, metavar="N", help="actions at once (default 100)")
    group.add_argument(
        "--max-local-activities",
        type=_positive_int,
        metavar="N",
        help="queries and mutations at once (default 100)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the level of log lines on stderr (default info)",
    )


def _version() -> str:
    try:
        return importlib.metadata.version("kitcn-temporal")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "(not installed)"


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds >= 0")
    return value


def _at_least(low: int, why: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _positive_int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too few: {why}")
        return value

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (errors reported as one line on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(join_signed_values(list(sys.argv[1:] if argv is None else argv)))
        if args.command is None:
            parser.print_help(sys.stderr)
            return USAGE_EXIT
        return int(asyncio.run(args.handler(args)))
    except UsageError as err:
        return _fail(str(err), USAGE_EXIT)
    except CliError as err:
        return _fail(str(err))
    except CRPCError as err:  # the library refused: unknown procedure, bad arguments, unknown job...
        return _fail(f"{err.code}: {err.message}")
    except RPCError as err:
        return _fail(f"Temporal refused the request: {err.message}")
    except EncryptionKeyError as err:
        return _fail(str(err))
    except KeyError as err:  # an encrypted payload read without a key (schedules, ...)
        missing = missing_key_error(err)
        if missing is None:
            raise
        return _fail(str(missing))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _fail("interrupted", INTERRUPTED_EXIT)
    except BrokenPipeError:  # the reader went away (`... | head`): nothing left to say
        return BROKEN_PIPE_EXIT
    except SystemExit as exit_:  # --help, --version
        return exit_status(exit_.code)


def _fail(message: str, status: int = 1) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def main() -> NoReturn:
    """The ``kitcn-temporal`` entry point."""
    # The Temporal SDK's runtime can abort the interpreter at exit: leave without it.
    exit_now(run_cli())

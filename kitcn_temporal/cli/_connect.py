"""What a command needs before it runs: the app, its crons and a Temporal client.

Layer: command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import re
import sys
import traceback
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from .._app import App
from .._errors import CRPCError
from .._plugin import KitcnPlugin, kitcn_data_converter
from ..jobs._handles import namespace_missing
from ..ops._encryption import codec_for
from ._parse import parse_target

#: Where ``--crons`` looks when it is not given (used only if the module exists).
DEFAULT_CRONS = "workflows.crons:crons"
#: Temporal's own default address, used when neither the env config nor ``--address`` names one.
DEFAULT_ADDRESS = "localhost:7233"
#: How long to wait for a server that accepts connections but does not answer.
CONNECT_TIMEOUT = 10.0


class CliError(Exception):
    """A failure to report as one line on stderr, with exit status 1."""


def load_app(args: argparse.Namespace) -> App:
    """``App.discover(args.app, ...)``, importing the package from the current directory."""
    _cwd_on_path()
    options: dict[str, Any] = {}
    if args.task_queue:
        options["task_queue"] = args.task_queue
    if args.database:
        options["database"] = args.database
    if args.app_name:
        options["name"] = args.app_name
    try:
        return App.discover(args.app, **options)
    except ModuleNotFoundError as err:
        if err.name and (args.app == err.name or args.app.startswith(err.name + ".")):
            raise CliError(
                f"cannot import the app package {args.app!r} from {os.getcwd()}: "
                "run from the project directory or name the package with --app"
            ) from None
        raise CliError(f"cannot load the app {args.app!r}: {_describe(err)}") from None
    except (ValueError, TypeError, CRPCError) as err:
        raise CliError(f"the app {args.app!r} is not valid: {err}") from None
    except Exception as err:  # the app's own modules (or its database URL) failed
        raise CliError(f"cannot load the app {args.app!r}: {_describe(err)}") from None


def load_crons(spec: str | None) -> Any:
    """The cron declarations named by ``--crons`` (``None`` when there are none)."""
    if spec is None:
        _cwd_on_path()
        try:
            found = importlib.util.find_spec(DEFAULT_CRONS.partition(":")[0])
        except ModuleNotFoundError:
            found = None
        if found is None:
            return None
        spec = DEFAULT_CRONS
    if not spec:  # --crons "" : explicitly none
        return None
    module_name, attr = parse_target(spec, "--crons")
    _cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise CliError(f"--crons {spec!r}: there is no module {module_name!r} in {os.getcwd()}") from None
        raise CliError(f"importing the crons in {module_name!r} failed: {_describe(err)}") from None
    except Exception as err:
        raise CliError(f"importing the crons in {module_name!r} failed: {_describe(err)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CliError(f"--crons {spec!r}: module {module_name!r} has no attribute {attr!r}") from None


def connect_config(args: argparse.Namespace) -> dict[str, Any]:
    """``Client.connect`` arguments: Temporal's env config, then ``--address``/``--namespace``."""
    from temporalio.envconfig import ClientConfig

    try:
        config: dict[str, Any] = dict(ClientConfig.load_client_connect_config(profile=args.profile))
    except Exception as err:  # a bad config file or an unknown profile
        raise CliError(f"cannot load Temporal's client configuration: {err}") from None
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if args.address:
        config["target_host"] = args.address
    if args.namespace:
        config["namespace"] = args.namespace
    return config


async def connect(config: dict[str, Any], app: App | None, *, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A client with the app's plugin (or just the pydantic converter when no app is needed)."""
    extra = client_options(app)
    address = config["target_host"]
    try:
        client = await asyncio.wait_for(Client.connect(**config, **extra), timeout)
    except asyncio.TimeoutError:
        raise CliError(f"cannot reach Temporal at {address}: no answer within {timeout:g}s") from None
    except ValueError as err:  # the SDK refuses the address before connecting
        raise CliError(
            f"{address!r} is not a Temporal address (--address or TEMPORAL_ADDRESS): {err}; "
            f"expected host:port, e.g. {DEFAULT_ADDRESS}"
        ) from None
    except RuntimeError as err:
        raise CliError(f"cannot reach Temporal at {address}: {connection_reason(err)}") from None
    await require_namespace(client)
    return client


async def require_namespace(client: Client) -> None:
    """Refuse a namespace that does not exist, naming it (every command would fail on it)."""
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=client.namespace))
    except RPCError as err:
        if namespace_missing(err):
            raise CliError(
                f"namespace {client.namespace!r} does not exist at {client.service_client.config.target_host}: "
                "create it (temporal operator namespace create) or pass --namespace / TEMPORAL_NAMESPACE"
            ) from None
        raise


def client_options(app: App | None, **plugin_options: Any) -> dict[str, Any]:
    """``Client.connect`` options: the app's plugin, or just the data converter without an app;
    encryption keys from ``KITCN_ENCRYPTION_KEYS`` either way."""
    try:
        if app is not None:
            return {"plugins": [KitcnPlugin(app, **plugin_options)]}
        return {"data_converter": kitcn_data_converter(codec=codec_for(None))}
    except (ValueError, ImportError) as err:  # a malformed key, or the encryption extra missing
        raise CliError(str(err)) from None


def connection_reason(err: BaseException) -> str:
    """The readable part of the SDK's connection error (``Connection refused``)."""
    text = str(err)
    found = re.search(r'message: "([^"]+)"', text) or re.search(r'ConnectError\("([^"]+)"', text)
    return found.group(1) if found else text.removeprefix("Failed client connect: ")


def _cwd_on_path() -> None:
    # The installed script's sys.path starts at its own directory, not the user's project.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _describe(err: BaseException) -> str:
    """``file:line: Type: message`` of the error a user's module raised."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}: SyntaxError: {err.msg}"
    frames = traceback.extract_tb(err.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(err).__name__}: {err}"

"""Operating it: the embedded dev server, namespace setup, metrics, encryption at rest, the
remote codec endpoint and the exit of producer scripts.

Leaf utilities: they know Temporal and the wire format, not procedures, jobs or apps (the
worker and client that use them sit above). ``_metrics`` is also imported by the job
workflow, so it stays deterministic (the workflow's replay-safe meter).

Layer: operations: below procedures; imports only ``_wire``.
"""

from ._codec_server import CodecServer, serve_codec
from ._devserver import DevServer, DevServerError, free_port, port_open, start_dev_server, temporal_binary
from ._encryption import KEYS_ENV, EncryptionCodec, EncryptionKeyError, codec_for
from ._metrics import metrics_runtime, prometheus_config
from ._script import run
from ._setup import RETENTION, SEARCH_ATTRIBUTES, SetupError, SetupReport, setup_namespace

__all__ = [
    "KEYS_ENV",
    "RETENTION",
    "SEARCH_ATTRIBUTES",
    "CodecServer",
    "DevServer",
    "DevServerError",
    "EncryptionCodec",
    "EncryptionKeyError",
    "SetupError",
    "SetupReport",
    "codec_for",
    "free_port",
    "metrics_runtime",
    "port_open",
    "prometheus_config",
    "run",
    "serve_codec",
    "setup_namespace",
    "start_dev_server",
    "temporal_binary",
]

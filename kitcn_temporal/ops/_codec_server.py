"""Temporal's remote codec endpoint, so that the Temporal UI (and ``temporal --codec-endpoint``)
shows decrypted payloads to whoever can reach it.

``POST /decode`` and ``POST /encode`` take and return ``{"payloads": [...]}`` in protobuf
JSON; CORS answers the UI's origins (preflight included, with credentials). Anyone who can
reach the endpoint can decrypt: bind it where only operators reach it.

Layer: operations.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from ._encryption import EncryptionCodec, EncryptionKeyError

#: Headers the Temporal UI sends with codec requests.
_ALLOWED_HEADERS = "content-type, x-namespace, authorization"
_MAX_BODY = 64 * 1024 * 1024


@dataclass
class CodecServer:
    """A running codec endpoint (in a thread of this process)."""

    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_codec(
    codec: EncryptionCodec, *, host: str = "127.0.0.1", port: int = 8081, origins: Sequence[str] = ()
) -> CodecServer:
    """Serve ``codec`` on ``http://host:port`` until :meth:`CodecServer.close`.

    :param origins: the browser origins allowed to call it (the Temporal UI's, e.g.
        ``http://localhost:8233``); ``"*"`` allows any.
    """
    handler = _handler(codec, tuple(o.rstrip("/") for o in origins))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="kitcn-codec-server", daemon=True)
    thread.start()
    return CodecServer(server, thread)


def _handler(codec: EncryptionCodec, origins: tuple[str, ...]) -> type[http.server.BaseHTTPRequestHandler]:
    actions: dict[str, Callable[[Payload], Payload]] = {"decode": codec.decrypt, "encode": codec.encrypt}

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "kitcn-codec"

        def do_OPTIONS(self) -> None:  # CORS preflight
            self._reply(204 if self._cors_origin() else 403, b"")

        def do_POST(self) -> None:
            # The UI adds a query (``/decode?preserveStorageRefs=true``); a prefix may name the namespace.
            action = actions.get(urllib.parse.urlsplit(self.path).path.rstrip("/").rpartition("/")[2])
            if action is None:
                self._reply_json(404, {"error": f"no such endpoint {self.path}: POST /decode or /encode"})
                return
            length = int(self.headers.get("content-length") or 0)
            if not 0 < length <= _MAX_BODY:
                self._reply_json(400, {"error": 'expected a JSON body {"payloads": [...]}'})
                return
            try:
                given = json_format.Parse(self.rfile.read(length), Payloads())
                result = Payloads(payloads=[action(p) for p in given.payloads])
            except json_format.ParseError as err:
                self._reply_json(400, {"error": f"not Temporal's payloads JSON: {err}"})
                return
            except EncryptionKeyError as err:
                self._reply_json(400, {"error": str(err)})
                return
            self._reply_json(200, json_format.MessageToDict(result))

        def log_message(self, format: str, *args: object) -> None:  # no line per request on stderr
            pass

        def _cors_origin(self) -> str | None:
            origin = (self.headers.get("origin") or "").rstrip("/")
            return origin if origin and ("*" in origins or origin in origins) else None

        def _reply_json(self, status: int, body: object) -> None:
            self._reply(status, json.dumps(body).encode(), "application/json")

        def _reply(self, status: int, body: bytes, content_type: str | None = None) -> None:
            self.send_response(status)
            origin = self._cors_origin()
            if origin is not None:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                asked = self.headers.get("access-control-request-headers")
                self.send_header("Access-Control-Allow-Headers", asked or _ALLOWED_HEADERS)
                self.send_header("Access-Control-Max-Age", "600")
                self.send_header("Vary", "Origin")
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler

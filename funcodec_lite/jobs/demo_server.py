"""The HTTP side of ``codec serve``: the standard library's threading server, one page and three endpoints.

* ``GET /``: the page (`funcodec_lite.jobs.demo_page`), self-contained.
* ``GET /api/models``: the models, bit rates, masked models and presets as JSON.
* ``POST /api/code``: a ``multipart/form-data`` upload (``file``, ``model``, ``n_q``, optional ``vamp`` and
  ``masked``) coded by `DemoApp.run`; JSON back, ``{"error": "..."}`` with status 400 for bad input.
* ``GET /files/<job>/<name>``: the files a job wrote (byte ranges supported, so audio can seek).

Nothing but these paths is served; an error inside the server becomes a one-line JSON message (status 500),
never a traceback in the page.
"""

from __future__ import annotations

import json
import sys
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from funcodec_lite.jobs.demo import DemoApp, DemoError
from funcodec_lite.jobs.demo_page import render_demo_page

_TYPES = {".wav": "audio/wav", ".png": "image/png"}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: ``{name: (filename or None, bytes)}``.

    Raises:
        DemoError: a body that is not multipart form data.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        raise DemoError("expected a multipart/form-data upload")
    message = BytesParser(policy=HTTP).parsebytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise DemoError("the upload is not multipart form data")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def _text(fields: dict[str, tuple[str | None, bytes]], name: str) -> str:
    return fields.get(name, (None, b""))[1].decode("utf-8", "replace").strip()


def make_handler(app: DemoApp, quiet: bool = True) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``app``."""
    page = render_demo_page().encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        server_version = "funcodec-lite-demo"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            if not quiet:
                super().log_message(format, *args)

        def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode("utf-8"), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            try:
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, page, "text/html; charset=utf-8")
                elif path == "/api/models":
                    self._json(200, app.describe())
                elif path.startswith("/files/") and path.count("/") == 3:
                    _, _, job, name = path.split("/")
                    file = app.file_path(job, name)
                    if file is None:
                        self._json(404, {"error": "no such file"})
                    else:
                        self._file(file)
                else:
                    self._json(404, {"error": f"no such page: {path}"})
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_HEAD = do_GET  # noqa: N815

        def _file(self, file: Path) -> None:
            data = file.read_bytes()
            kind = _TYPES.get(file.suffix, "application/octet-stream")
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and "," not in ranged:
                start_text, _, end_text = ranged[6:].partition("-")
                try:
                    start = int(start_text) if start_text else max(0, len(data) - int(end_text))
                    end = min(int(end_text), len(data) - 1) if start_text and end_text else len(data) - 1
                except ValueError:
                    start, end = 0, -1
                if 0 <= start <= end:
                    self._send(206, data[start:end + 1], kind,
                               {"Content-Range": f"bytes {start}-{end}/{len(data)}",
                                "Accept-Ranges": "bytes"})
                    return
                self._send(416, b"", kind, {"Content-Range": f"bytes */{len(data)}"})
                return
            self._send(200, data, kind, {"Accept-Ranges": "bytes"})

        def do_POST(self) -> None:  # noqa: N802 - the base class's name
            if self.path.split("?", 1)[0] != "/api/code":
                self._json(404, {"error": f"no such endpoint: {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > app.config.max_bytes + 64 * 1024:
                    self.close_connection = True
                    raise DemoError(f"the upload is too large ({length / 1e6:.1f} MB; at most "
                                    f"{app.config.max_bytes / 1e6:.0f} MB)")
                fields = parse_multipart(self.headers.get("Content-Type", ""), self.rfile.read(length))
                filename, data = fields.get("file", (None, b""))
                result = app.run(data, filename or "upload", _text(fields, "model"), _text(fields, "n_q"),
                                 _text(fields, "vamp"), _text(fields, "masked"))
                self._json(200, result)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except DemoError as err:
                self._json(400, {"error": _one_line(err)})
            except Exception as err:  # noqa: BLE001 - the page gets one line, never a traceback
                print(f"codec serve: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
                self._json(500, {"error": f"the server could not code this file ({type(err).__name__}: "
                                          f"{_one_line(err)})"})

    return Handler


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines)[:500] if lines else type(error).__name__


def make_server(app: DemoApp, host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = True) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; ``port`` 0 picks a free one (``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), make_handler(app, quiet))
    server.daemon_threads = True
    return server

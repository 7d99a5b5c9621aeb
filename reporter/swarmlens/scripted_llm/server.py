"""The HTTP side of the scripted LLM: a real OpenAI-compatible endpoint on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .script import Script, completion_body, response_body, response_events, responses_messages, stream_chunks

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 << 20
# Routes for a test that runs the server in another process: GET .../requests, POST .../reset.
# No path of the OpenAI API starts with an underscore.
CONTROL = "/_scripted"


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean; debug log instead
        logger.debug("%s - %s", self.address_string(), format % args)

    # -- helpers -------------------------------------------------------------------------
    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, type_: str = "invalid_request_error") -> None:
        self._send_json(status, {"error": {"message": message, "type": type_, "param": None, "code": None}})

    def _wait(self, seconds: float) -> bool:
        """Sleep, but wake up when the server stops; False when it did."""
        return not self.server.stopping.wait(seconds) if seconds > 0 else True

    # -- routes --------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == CONTROL + "/requests":  # what a test in another process asserts on
            with self.server.lock:
                received = list(self.server.requests)
            self._send_json(200, {"requests": received})
        elif path in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "swarmlens-scripted"}
                    for m in self.server.script.models()]
            self._send_json(200, {"object": "list", "data": data})
        elif path in ("", "/health"):
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"no route GET {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == CONTROL + "/reset":
            self.server.reset()
            self._send_json(200, {"status": "reset"})
            return
        responses = path in ("/v1/responses", "/responses")
        if path not in ("/v1/chat/completions", "/chat/completions") and not responses:
            self._error(404, f"no route POST {path}")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._error(400, "bad Content-Length")
            return
        if length > MAX_BODY_BYTES:
            self._error(413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if responses:
                if not isinstance(body, dict) or not isinstance(body.get("input"), (str, list)):
                    raise ValueError("body must be an object with an input string or list")
            elif not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body must be an object with a messages list")
        except ValueError as exc:
            self._error(400, f"malformed request: {exc}")
            return
        with self.server.lock:
            self.server.requests.append(body)
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        request = body
        if responses:  # the script selects on the equivalent chat messages; the usage always comes
            body = {"model": request.get("model"), "messages": responses_messages(request)}
        sel = self.server.script.select(body)
        if sel.error is not None:
            if not self._wait(sel.error.delay):
                return
            if sel.error.status == 0:  # scripted timeout: the client gives up first, or sees the connection close
                self.close_connection = True
                return
            headers = {}
            if sel.error.retry_after is not None:
                headers["retry-after-ms"] = str(int(sel.error.retry_after * 1000))
            self._send_json(sel.error.status, sel.error.body(), headers)
            return
        if not self._wait(sel.delay):
            return
        created = int(time.time())
        if responses:
            self._respond(sel, created, request, stream)
            return
        if not stream:
            self._send_json(200, completion_body(sel, created))
            return
        frames = ((b"data: " + json.dumps(chunk).encode() + b"\n\n", sel.chunk_delay)
                  for chunk in stream_chunks(sel, created, include_usage=include_usage))
        self._event_stream(frames, tail=b"data: [DONE]\n\n")

    def _respond(self, sel, created: int, request: dict, stream: bool) -> None:
        """A Responses API answer: one JSON body, or its server-sent events."""
        if not stream:
            self._send_json(200, response_body(sel, created, request))
            return
        frames = ((b"event: " + event["type"].encode() + b"\ndata: " + json.dumps(event).encode() + b"\n\n",
                   sel.chunk_delay if event["type"].endswith(".delta") else 0)
                  for event in response_events(sel, created, request))
        self._event_stream(frames)

    def _event_stream(self, frames, tail: bytes = b"") -> None:
        """Server-sent events: each (bytes, delay after it) as it comes, then the tail."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for frame, delay in frames:
                self.wfile.write(frame)
                self.wfile.flush()
                if delay and not self._wait(delay):
                    return
            if tail:
                self.wfile.write(tail)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
            pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, script: Script, requests: list, lock: threading.Lock):
        self.script = script
        self.requests = requests
        self.lock = lock
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def reset(self) -> None:
        self.script.reset()
        with self.lock:
            self.requests.clear()


class ScriptedLLMServer:
    """A scripted OpenAI-compatible server on a background thread.

    >>> with ScriptedLLMServer(script) as llm:
    ...     client = openai.OpenAI(base_url=llm.url, api_key="scripted")
    """

    def __init__(self, script: Any, *, host: str = "127.0.0.1", port: int = 0, usage: bool | None = None):
        self.script = script if isinstance(script, Script) else Script(script, usage=usage)
        if usage is not None:
            self.script.data["usage"] = usage
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[dict] = []
        self._lock = threading.Lock()

    def _make(self) -> "_HTTPServer":
        return _HTTPServer(self._address, self.script, self._requests, self._lock)

    def start(self) -> "ScriptedLLMServer":
        if self._thread is not None:
            return self
        if self._httpd is None:
            self._httpd = self._make()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (used by the CLI)."""
        if self._httpd is None:
            self._httpd = self._make()
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.stopping.set()
            self._httpd.server_close()
            self._httpd = None

    def bind(self) -> "ScriptedLLMServer":
        """Open the socket without serving yet, so `url` is known (port 0 picks a free port)."""
        if self._httpd is None:
            self._httpd = self._make()
        return self

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for the OpenAI client (``.../v1``)."""
        return f"http://{self._address[0]}:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        """Every request body received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget received requests and transient-failure attempts."""
        self.script.reset()
        with self._lock:
            self._requests.clear()

    def __enter__(self) -> "ScriptedLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

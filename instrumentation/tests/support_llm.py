"""The scripted OpenAI-compatible LLM of the repository (reporter/swarmlens/scripted_llm), run as a
process of its own by file path with nothing but the standard library: these tests run in an
environment that holds the instrumentation alone, without swarmlens."""

from __future__ import annotations

import json
import re
import selectors
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

SERVER = Path(__file__).resolve().parents[2] / "reporter" / "swarmlens" / "scripted_llm"
START_TIMEOUT = 30.0


class ScriptedLLM:
    """One scripted LLM process: ``url`` for the openai client, ``requests`` it received, ``reset()``.

    >>> with ScriptedLLM(script) as llm:
    ...     client = openai.OpenAI(base_url=llm.url, api_key="test")
    """

    def __init__(self, script: dict, *, usage: bool = True):
        self._script = script
        self._usage = usage
        self._dir: tempfile.TemporaryDirectory | None = None
        self._proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "ScriptedLLM":
        self._dir = tempfile.TemporaryDirectory(prefix="scripted-llm-")
        script = Path(self._dir.name) / "script.json"
        script.write_text(json.dumps(self._script), encoding="utf-8")
        stderr = open(Path(self._dir.name) / "stderr.txt", "wb")
        # -I -S: no site-packages and no environment, so the server cannot lean on anything installed
        command = [sys.executable, "-I", "-S", str(SERVER), "--port", "0", "--script", str(script)]
        if not self._usage:
            command.append("--no-usage")
        with stderr:
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        line = self._first_line()
        match = re.match(r"scripted LLM serving (http://\S+/v1) ", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the scripted LLM did not start: {line!r}; stderr: {self._stderr()}")
        self.url = match.group(1)
        return self

    def _first_line(self) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=START_TIMEOUT):
                return f"(nothing within {START_TIMEOUT:.0f} s)"
        return self._proc.stdout.readline()

    def _stderr(self) -> str:
        path = Path(self._dir.name) / "stderr.txt" if self._dir else None
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    def _call(self, method: str, route: str) -> Any:
        request = urllib.request.Request(self.url.removesuffix("/v1") + "/_scripted/" + route, method=method,
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    @property
    def requests(self) -> list[dict]:
        """Every request body the server received since the last reset, in arrival order."""
        return self._call("GET", "requests")["requests"]

    def reset(self) -> None:
        """Forget received requests and which agent answered which turn."""
        self._call("POST", "reset")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "ScriptedLLM":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

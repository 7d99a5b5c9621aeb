"""The scripted OpenAI-compatible server, through the real openai client and raw HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from swarmlens.scripted_llm import ScriptedLLMServer, ScriptError, load_script

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "reporter" / "swarmlens" / "scripted_llm"

SYSTEM = {"role": "system", "content": "[agent:a] You are A."}
SCRIPT = {
    "model": "scripted-model",
    "chunk_size": 5,
    "agents": {
        "a": {"match": "[agent:a]", "name": "A", "replies": [
            {"when": "hi", "content": "Hello world, this is A.", "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                                                           "cached_tokens": 3, "reasoning_tokens": 2}},
            {"when": "hi", "tool_calls": [{"name": "lookup", "arguments": {"q": "x" * 12}, "id": "call_1"},
                            {"name": "other", "arguments": "{}"}]},
            {"when": "flaky", "content": "finally", "fail_first": [{"status": 429, "retry_after": 0},
                                                                   {"status": 500}]},
            {"when": "slow", "content": "late", "delay": 10},
        ]},
    },
}


@pytest.fixture(scope="module")
def server():
    with ScriptedLLMServer(SCRIPT) as s:
        yield s


def client(server, **kw):
    return openai.OpenAI(base_url=server.url, api_key="k", max_retries=kw.pop("max_retries", 0), **kw)


def test_json_completion_with_usage(server):
    r = client(server).chat.completions.create(model="gpt-x", messages=[SYSTEM, {"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello world, this is A."
    assert r.model == "scripted-model" and r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert r.usage.prompt_tokens_details.cached_tokens == 3
    assert r.usage.completion_tokens_details.reasoning_tokens == 2


def test_second_turn_streams_tool_calls_and_default_usage(server):
    history = [SYSTEM, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello world, this is A."}]
    chunks = list(client(server).chat.completions.create(model="m", messages=history, stream=True,
                                                         stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    calls = {}
    for c in chunks[:-1]:
        for tc in c.choices[0].delta.tool_calls or []:
            assert len(c.choices[0].delta.tool_calls) == 1
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            entry["id"] += tc.id or ""
            entry["name"] += tc.function.name or ""
            entry["args"] += tc.function.arguments or ""
    assert calls[0] == {"id": "call_1", "name": "lookup", "args": json.dumps({"q": "x" * 12}, separators=(",", ":"))}
    assert calls[1]["name"] == "other" and calls[1]["id"].startswith("call_")
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    # documented default: ceil(chars / 4) of the request texts and of the reply's names + arguments
    prompt_chars = len(SYSTEM["content"]) + len("hi") + len("Hello world, this is A.")
    out_chars = len("lookup") + len(calls[0]["args"]) + len("other") + len("{}")
    assert chunks[-1].usage.prompt_tokens == -(-prompt_chars // 4)
    assert chunks[-1].usage.completion_tokens == -(-out_chars // 4)


def test_stream_without_include_usage_has_no_usage_chunk(server):
    chunks = list(client(server).chat.completions.create(
        model="m", messages=[SYSTEM, {"role": "user", "content": "hi"}], stream=True))
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello world, this is A."
    assert not hasattr(chunks[0], "usage") or chunks[0].usage is None


def test_transient_errors_then_success_and_retry(server):
    msgs = [SYSTEM, {"role": "user", "content": "flaky please"}]
    c = client(server)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="m", messages=msgs)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=msgs)
    assert c.chat.completions.create(model="m", messages=msgs).choices[0].message.content == "finally"
    server.reset()
    retrying = client(server, max_retries=2)  # the client's own retries get through
    assert retrying.chat.completions.create(model="m", messages=msgs).choices[0].message.content == "finally"


def test_delay_makes_a_client_timeout(server):
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.3).chat.completions.create(
            model="m", messages=[SYSTEM, {"role": "user", "content": "slow"}])
    assert time.monotonic() - t0 < 8  # gave up at its 0.3 s timeout, long before the 10 s reply


def test_unknown_agent_and_exhausted_script_are_clear_errors(server):
    with pytest.raises(openai.InternalServerError, match="no agent of the script matches"):
        client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_no_usage_provider_and_models():
    with ScriptedLLMServer(SCRIPT, usage=False) as s:
        r = client(s).chat.completions.create(model="m", messages=[SYSTEM, {"role": "user", "content": "hi"}])
        assert r.usage is None
        chunks = list(client(s).chat.completions.create(model="m", messages=[SYSTEM, {"role": "user", "content": "hi"}],
                                                        stream=True, stream_options={"include_usage": True}))
        assert all(c.choices and c.usage is None for c in chunks)
        with urllib.request.urlopen(s.url + "/models") as resp:
            ids = [m["id"] for m in json.load(resp)["data"]]
        assert "scripted-model" in ids
        assert len(s.requests) == 2 and s.requests[1]["stream_options"] == {"include_usage": True}


def test_script_validation_names_the_fault(tmp_path):
    with pytest.raises(ScriptError, match=r"agents\['a'\]\.replies\[0\]: unknown key"):
        load_script({"agents": {"a": {"replies": [{"contnt": "typo"}]}}})
    with pytest.raises(ScriptError, match="usage.prompt_tokens"):
        load_script({"agents": {"a": {"replies": [{"usage": {"completion_tokens": 1}}]}}})
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCRIPT))
    assert load_script(str(path))["model"] == "scripted-model"


def test_cli_serves_and_prints_the_url():
    example = PACKAGE_DIR / "example_support.json"
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "llm-server", "--port", "0", "--script",
                             str(example)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        r = c.chat.completions.create(model="m", messages=[{"role": "system", "content": "[agent:triage]"},
                                                           {"role": "user", "content": "refund please"}])
        assert r.choices[0].message.tool_calls[0].function.name == "transfer_to_billing"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_runs_by_path_on_the_standard_library_alone_with_control_routes(tmp_path):
    """As the instrumentation's tests run it where swarmlens is not installed: by file path, with no
    site-packages (-S) and no environment (-I); a test in another process reads what it received
    and resets it over HTTP."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(PACKAGE_DIR), "--port", "0", "--script", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.match(r"scripted LLM serving (http://127\.0\.0\.1:\d+/v1) ", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match.group(1)
        control = url.removesuffix("/v1") + "/_scripted/"

        def received():
            with urllib.request.urlopen(control + "requests") as resp:
                return json.load(resp)["requests"]

        def reset():
            with urllib.request.urlopen(urllib.request.Request(control + "reset", data=b"", method="POST")) as resp:
                assert json.load(resp) == {"status": "reset"}

        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        msgs = [SYSTEM, {"role": "user", "content": "flaky please"}]
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="m", messages=msgs)
        assert [body["messages"] for body in received()] == [msgs]
        reset()
        assert received() == []
        with pytest.raises(openai.RateLimitError):  # the attempts were forgotten too: it fails first again
            c.chat.completions.create(model="m", messages=msgs)
        r = c.chat.completions.create(model="m", messages=[SYSTEM, {"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Hello world, this is A." and r.usage.prompt_tokens == 11
        assert len(received()) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)

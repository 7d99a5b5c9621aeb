"""The script of the scripted LLM: which agent is speaking, what it answers, what it costs.

Everything here is pure (no sockets), so the selection rules can be tested directly and the
demo and benchmarks can build responses without a server. The format is documented in
:mod:`swarmlens.scripted_llm`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

DEFAULT_MODEL_LIST = ("gpt-4o", "gpt-4o-mini")
DEFAULT_CHUNK_SIZE = 8
_MAX_TASKS = 100_000  # remembered tasks (turn -> agent); the oldest are forgotten first

_REPLY_KEYS = {
    "content", "tool_calls", "usage", "finish_reason", "model", "delay", "chunk_delay", "chunk_size",
    "error", "fail_first", "when",
}
_AGENT_KEYS = {"match", "name", "replies", "fallback"}
_SCRIPT_KEYS = {"model", "usage", "agents", "fallback", "models", "chunk_size"}
_ERROR_KEYS = {"status", "message", "type", "code", "retry_after", "delay"}


class ScriptError(ValueError):
    """The script is malformed; the message names the offending path."""


@dataclass(frozen=True)
class ScriptedError:
    """An HTTP error the server answers with instead of a completion."""

    status: int
    message: str
    type: str
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


@dataclass
class Selection:
    """What the server answers to one request."""

    agent: str | None
    reply: dict | None
    error: ScriptedError | None
    usage: dict | None  # OpenAI-shaped usage object, None when the provider reports none
    model: str
    response_id: str
    tool_calls: list[dict]
    finish_reason: str
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = DEFAULT_CHUNK_SIZE


def estimate_tokens(text: str) -> int:
    """The documented default token count: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / 4) if text else 0


def message_text(message: Mapping[str, Any]) -> str:
    """The text the default usage function counts in one request message."""
    parts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    for call in message.get("tool_calls") or ():
        fn = (call or {}).get("function") or {}
        parts.append(str(fn.get("name") or ""))
        parts.append(str(fn.get("arguments") or ""))
    return "".join(parts)


def default_usage(messages: Iterable[Mapping[str, Any]], content: str, tool_calls: Iterable[Mapping[str, Any]]) -> dict:
    """Usage when a reply gives none: prompt = ceil(chars of all request messages / 4),
    completion = ceil(chars of reply content + tool names + tool arguments / 4), at least 1."""
    prompt = estimate_tokens("".join(message_text(m) for m in messages))
    out_text = (content or "") + "".join(c["name"] + c["arguments"] for c in tool_calls)
    return {"prompt_tokens": max(prompt, 1), "completion_tokens": max(estimate_tokens(out_text), 1)}


def openai_usage(spec: Mapping[str, Any]) -> dict:
    """Turn a script usage spec into the usage object of the OpenAI API."""
    prompt = int(spec["prompt_tokens"])
    completion = int(spec["completion_tokens"])
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if spec.get("cached_tokens") is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": int(spec["cached_tokens"])}
    if spec.get("reasoning_tokens") is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": int(spec["reasoning_tokens"])}
    return usage


def _err(path: str, msg: str) -> ScriptError:
    return ScriptError(f"script{path}: {msg}")


def _check_keys(obj: Any, allowed: set[str], path: str) -> None:
    if not isinstance(obj, Mapping):
        raise _err(path, f"expected an object, got {type(obj).__name__}")
    unknown = set(obj) - allowed
    if unknown:
        raise _err(path, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _check_error(spec: Any, path: str) -> None:
    _check_keys(spec, _ERROR_KEYS, path)
    status = spec.get("status", 500)
    if spec.get("status") == "timeout":
        if not isinstance(spec.get("delay", 0), (int, float)):
            raise _err(path, "delay must be a number of seconds")
        return
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise _err(path + ".status", "must be an HTTP error status (400-599) or \"timeout\"")


def _check_reply(reply: Any, path: str) -> None:
    _check_keys(reply, _REPLY_KEYS, path)
    content = reply.get("content")
    if content is not None and not isinstance(content, str):
        raise _err(path + ".content", "must be a string")
    for i, call in enumerate(reply.get("tool_calls") or ()):
        p = f"{path}.tool_calls[{i}]"
        _check_keys(call, {"name", "arguments", "id"}, p)
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise _err(p + ".name", "required, a function name")
        if not isinstance(call.get("arguments", {}), (str, Mapping)):
            raise _err(p + ".arguments", "must be an object or a JSON string")
    usage = reply.get("usage")
    if usage is not None:
        _check_keys(usage, {"prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"}, path + ".usage")
        for k in ("prompt_tokens", "completion_tokens"):
            if not isinstance(usage.get(k), int) or usage[k] < 0:
                raise _err(f"{path}.usage.{k}", "required, a non-negative integer")
    if "error" in reply:
        _check_error(reply["error"], path + ".error")
    for i, spec in enumerate(reply.get("fail_first") or ()):
        _check_error(spec, f"{path}.fail_first[{i}]")
    when = reply.get("when")
    if when is not None and not isinstance(when, (str, list)):
        raise _err(path + ".when", "must be a string or a list of strings")


def validate_script(script: Any) -> dict:
    """Check a script and return a private deep copy; raises ScriptError with the path of the fault."""
    _check_keys(script, _SCRIPT_KEYS, "")
    script = copy.deepcopy(dict(script))
    agents = script.get("agents")
    if not isinstance(agents, Mapping) or not agents:
        raise _err(".agents", "required, an object of agent key -> agent")
    for key, agent in agents.items():
        path = f".agents[{key!r}]"
        _check_keys(agent, _AGENT_KEYS, path)
        replies = agent.get("replies", [])
        if not isinstance(replies, list):
            raise _err(path + ".replies", "must be a list")
        for i, reply in enumerate(replies):
            _check_reply(reply, f"{path}.replies[{i}]")
        if agent.get("fallback") is not None:
            _check_reply(agent["fallback"], path + ".fallback")
    if script.get("fallback") is not None:
        _check_reply(script["fallback"], ".fallback")
    if not isinstance(script.get("usage", True), bool):
        raise _err(".usage", "must be true or false")
    return script


def load_script(source: Any) -> dict:
    """A script from a dict, a JSON string, or a path to a JSON file."""
    if isinstance(source, Mapping):
        return validate_script(source)
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        try:
            return validate_script(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ScriptError(f"script is not valid JSON: {exc}") from None
    raise ScriptError(f"script must be a dict, a JSON string or a file path, not {type(source).__name__}")


def _last_user_text(messages: list) -> str:
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role") == "user":
            return message_text(m)
    return ""


def _task_turns(messages: list) -> list:
    """Assistant messages after the last user message: the turns this task already made."""
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "user"),
                    default=-1)
    return [m for m in messages[last_user + 1:] if isinstance(m, Mapping) and m.get("role") == "assistant"]


def _when_matches(when: Any, text: str) -> bool:
    if when is None:
        return True
    options = [when] if isinstance(when, str) else list(when)
    low = text.lower()
    return any(str(o).lower() in low for o in options)


def _tool_calls(reply: Mapping[str, Any], seed: str) -> list[dict]:
    calls = []
    for i, call in enumerate(reply.get("tool_calls") or ()):
        args = call.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args, separators=(",", ":"), sort_keys=True)
        call_id = call.get("id") or "call_" + hashlib.sha1(f"{seed}/{i}".encode()).hexdigest()[:20]
        calls.append({"id": call_id, "name": call["name"], "arguments": args})
    return calls


def _scripted_error(spec: Mapping[str, Any]) -> ScriptedError:
    status = spec.get("status", 500)
    if status == "timeout":
        # The server holds the request for `delay` seconds and then closes the connection without an answer.
        return ScriptedError(status=0, message="timeout", type="timeout", delay=float(spec.get("delay", 30.0)))
    default_type = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}.get(
        status, "server_error")
    return ScriptedError(status=int(status), message=str(spec.get("message", f"scripted error {status}")),
                         type=str(spec.get("type", default_type)), code=spec.get("code"),
                         retry_after=spec.get("retry_after"), delay=float(spec.get("delay", 0.0)))


class Script:
    """A validated script plus the little state transient failures need.

    The reply index of an agent is the number of earlier turns of the same task that agent
    answered; see the module docstring.
    """

    def __init__(self, source: Any, *, usage: bool | None = None):
        self.data = load_script(source)
        if usage is not None:
            self.data["usage"] = usage
        self._attempts: dict[str, int] = {}
        self._turn_agents: dict[str, dict[int, str]] = {}
        self._lock = threading.Lock()
        # Every response gets an id of its own, as a provider's do: swarmlens counts a model call
        # once by its response id, so two identical requests must not share one.
        self._responses = itertools.count(1)
        self._nonce = os.urandom(8).hex()

    @property
    def reports_usage(self) -> bool:
        return bool(self.data.get("usage", True))

    def models(self) -> list[str]:
        names = list(self.data.get("models") or DEFAULT_MODEL_LIST)
        if self.data.get("model") and self.data["model"] not in names:
            names.append(self.data["model"])
        return names

    def reset(self) -> None:
        with self._lock:
            self._attempts.clear()
            self._turn_agents.clear()

    def _reply_index(self, key: str, messages: list) -> int:
        """How many replies agent `key` already gave in this task (see the module docstring)."""
        last_user = max((i for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "user"),
                        default=-1)
        opening = [m for m in messages[:last_user + 1]
                   if not (isinstance(m, Mapping) and m.get("role") in ("system", "developer"))]
        task_key = hashlib.sha1(json.dumps(opening, sort_keys=True, default=str).encode()).hexdigest()
        turns = [m for m in messages[last_user + 1:] if isinstance(m, Mapping) and m.get("role") == "assistant"]
        names = {str(a.get("name", k)): k for k, a in self.data["agents"].items()}
        with self._lock:
            seen = self._turn_agents.get(task_key)
            if seen is None:
                if len(self._turn_agents) >= _MAX_TASKS:
                    self._turn_agents.pop(next(iter(self._turn_agents)))
                seen = self._turn_agents[task_key] = {}
            seen[len(turns)] = key
            return sum(1 for j, m in enumerate(turns) if seen.get(j, names.get(str(m.get("sender")))) == key)

    def find_agent(self, system_text: str) -> str | None:
        """The first agent, in script order, whose ``match`` (default: its key) is in the system message."""
        for key, agent in self.data["agents"].items():
            if str(agent.get("match", key)) in system_text:
                return key
        return None

    def select(self, body: Mapping[str, Any], *, include_usage: bool = True) -> Selection:
        messages = list(body.get("messages") or [])
        system_text = "".join(message_text(m) for m in messages
                              if isinstance(m, Mapping) and m.get("role") in ("system", "developer"))
        fingerprint = hashlib.sha1(json.dumps(
            {"model": body.get("model"), "messages": messages}, sort_keys=True, default=str).encode()).hexdigest()
        key = self.find_agent(system_text)
        agent = self.data["agents"].get(key) if key is not None else None
        reply: dict | None = None
        if agent is not None:
            index = self._reply_index(key, messages)
            eligible = [r for r in agent.get("replies", []) if _when_matches(r.get("when"), _last_user_text(messages))]
            reply = eligible[index] if index < len(eligible) else agent.get("fallback")
        if reply is None:
            reply = self.data.get("fallback")
        if reply is None:
            why = (f"agent {key!r} has no reply left" if agent is not None
                   else "no agent of the script matches the system message")
            return self._selection(key, None, ScriptedError(500, f"scripted LLM: {why}", "script_exhausted"),
                                   body, fingerprint, messages, include_usage)
        failures = reply.get("fail_first") or []
        if failures:
            with self._lock:
                attempt = self._attempts.get(fingerprint, 0)
                self._attempts[fingerprint] = attempt + 1
            if attempt < len(failures):
                return self._selection(key, reply, _scripted_error(failures[attempt]), body, fingerprint,
                                       messages, include_usage)
        if reply.get("error") is not None:
            return self._selection(key, reply, _scripted_error(reply["error"]), body, fingerprint, messages,
                                   include_usage)
        return self._selection(key, reply, None, body, fingerprint, messages, include_usage)

    def _selection(self, key, reply, error, body, fingerprint, messages, include_usage) -> Selection:
        reply = reply or {}
        calls = _tool_calls(reply, fingerprint)
        model = reply.get("model") or self.data.get("model") or body.get("model") or "scripted"
        usage = None
        if self.reports_usage and include_usage and error is None:
            spec = reply.get("usage") or default_usage(messages, reply.get("content") or "", calls)
            usage = openai_usage(spec)
        return Selection(
            agent=key, reply=reply, error=error, usage=usage, model=str(model),
            response_id="chatcmpl-" + hashlib.sha1(
                f"{self._nonce}/{next(self._responses)}/{fingerprint}".encode()).hexdigest()[:24],
            tool_calls=calls,
            finish_reason=reply.get("finish_reason") or ("tool_calls" if calls else "stop"),
            delay=float(reply.get("delay", 0.0)), chunk_delay=float(reply.get("chunk_delay", 0.0)),
            chunk_size=max(1, int(reply.get("chunk_size") or self.data.get("chunk_size") or DEFAULT_CHUNK_SIZE)),
        )


def completion_body(sel: Selection, created: int) -> dict:
    """The JSON body of a non-streamed chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": sel.reply.get("content"), "refusal": None}
    if sel.tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in sel.tool_calls]
    body: dict[str, Any] = {
        "id": sel.response_id, "object": "chat.completion", "created": created, "model": sel.model,
        "choices": [{"index": 0, "message": message, "finish_reason": sel.finish_reason, "logprobs": None}],
        "system_fingerprint": None,
    }
    if sel.usage is not None:
        body["usage"] = sel.usage
    return body


def stream_chunks(sel: Selection, created: int, *, include_usage: bool) -> list[dict]:
    """The chunks of a streamed completion, in the order the OpenAI API sends them.

    With ``include_usage`` every chunk carries ``"usage": null`` and a last chunk with empty
    ``choices`` carries the usage, as the API does for ``stream_options.include_usage``.
    """
    base = {"id": sel.response_id, "object": "chat.completion.chunk", "created": created, "model": sel.model,
            "system_fingerprint": None}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        c = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}])
        if include_usage:
            c["usage"] = None
        return c

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    content = sel.reply.get("content") or ""
    for i in range(0, len(content), sel.chunk_size):
        chunks.append(chunk({"content": content[i:i + sel.chunk_size]}))
    for index, call in enumerate(sel.tool_calls):
        chunks.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": call["name"], "arguments": ""}}]}))
        args = call["arguments"]
        for i in range(0, len(args), sel.chunk_size):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": args[i:i + sel.chunk_size]}}]}))
    chunks.append(chunk({}, sel.finish_reason))
    if include_usage and sel.usage is not None:
        chunks.append(dict(base, choices=[], usage=sel.usage))
    return chunks


# ---------------------------------------------------------------------------------------------
# The Responses API (POST /v1/responses), which the OpenAI Agents SDK uses by default. A request is
# turned into the chat messages the script selects on (instructions -> system message, input items
# -> messages), so one script answers both APIs alike.


def responses_messages(body: Mapping[str, Any]) -> list[dict]:
    """The chat messages equivalent to a Responses API request: ``instructions`` as the system
    message, then the ``input`` items (a string is one user message). Consecutive function calls
    are one assistant turn, as the model made them in one response."""
    messages: list[dict] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            messages.append({"role": str(item.get("role") or "user"), "content": content or ""})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id") or ""), "type": "function",
                    "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "")}}
            last = messages[-1] if messages else None
            if last is not None and last.get("role") == "assistant" and last.get("tool_calls") is not None \
                    and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""),
                             "content": str(item.get("output") or "")})
    return messages


def responses_usage(usage: Mapping[str, Any] | None) -> dict | None:
    """The chat usage object of a selection, in the Responses API's shape."""
    if usage is None:
        return None
    out: dict[str, Any] = {
        "input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
        "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)},
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)},
    }
    return out


def _response_output(sel: Selection) -> list[dict]:
    output: list[dict] = []
    content = sel.reply.get("content")
    if content:
        output.append({"type": "message", "id": "msg_" + sel.response_id[9:], "status": "completed",
                       "role": "assistant",
                       "content": [{"type": "output_text", "text": content, "annotations": []}]})
    for c in sel.tool_calls:
        output.append({"type": "function_call", "id": "fc_" + c["id"][5:], "call_id": c["id"], "name": c["name"],
                       "arguments": c["arguments"], "status": "completed"})
    return output


def response_body(sel: Selection, created: int, request: Mapping[str, Any], *, status: str = "completed",
                  output: list | None = None) -> dict:
    """The JSON body of a Responses API response (also the ``response`` of its stream events)."""
    body: dict[str, Any] = {
        "id": "resp_" + sel.response_id[9:], "object": "response", "created_at": created, "status": status,
        "model": sel.model, "output": _response_output(sel) if output is None else output,
        "parallel_tool_calls": bool(request.get("parallel_tool_calls", True)),
        "tool_choice": request.get("tool_choice") or "auto", "tools": list(request.get("tools") or []),
        "instructions": request.get("instructions"), "error": None, "incomplete_details": None, "metadata": {},
        "temperature": 1.0, "top_p": 1.0, "max_output_tokens": None, "previous_response_id": None,
        "reasoning": None, "truncation": "disabled", "text": {"format": {"type": "text"}}, "user": None,
    }
    if status == "completed":
        body["usage"] = responses_usage(sel.usage)
    return body


def response_events(sel: Selection, created: int, request: Mapping[str, Any]) -> list[dict]:
    """The server-sent events of a streamed Responses API response, in the API's order: created,
    each output item (added, its deltas, done), completed (with the usage)."""
    events: list[dict] = [{"type": "response.created",
                           "response": response_body(sel, created, request, status="in_progress", output=[])}]
    for index, item in enumerate(_response_output(sel)):
        if item["type"] == "message":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": dict(item, status="in_progress", content=[])})
            events.append({"type": "response.content_part.added", "output_index": index, "item_id": item["id"],
                           "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})
            text = item["content"][0]["text"]
            for i in range(0, len(text), sel.chunk_size):
                events.append({"type": "response.output_text.delta", "output_index": index, "item_id": item["id"],
                               "content_index": 0, "delta": text[i:i + sel.chunk_size]})
            events.append({"type": "response.output_text.done", "output_index": index, "item_id": item["id"],
                           "content_index": 0, "text": text})
            events.append({"type": "response.content_part.done", "output_index": index, "item_id": item["id"],
                           "content_index": 0, "part": item["content"][0]})
        else:
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": dict(item, status="in_progress", arguments="")})
            args = item["arguments"]
            for i in range(0, len(args), sel.chunk_size):
                events.append({"type": "response.function_call_arguments.delta", "output_index": index,
                               "item_id": item["id"], "delta": args[i:i + sel.chunk_size]})
            events.append({"type": "response.function_call_arguments.done", "output_index": index,
                           "item_id": item["id"], "arguments": args})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response_body(sel, created, request)})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events

"""A scripted OpenAI-compatible LLM server, for tests, the demo and benchmarks.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on loopback) that speaks the parts of
the OpenAI API a Swarm app uses, so multi-agent scenarios run deterministically through the
real ``openai`` client:

- ``POST /v1/chat/completions``: JSON, or SSE when ``"stream": true``. Streams follow the API
  chunk by chunk, tool calls included (one tool-call delta per chunk, arguments in pieces).
  ``stream_options.include_usage`` gives every chunk ``"usage": null`` and adds a final chunk
  with empty ``choices`` and the usage, exactly as the API does.
- ``POST /v1/responses``: the Responses API, which the OpenAI Agents SDK uses by default. The
  request's ``instructions`` and ``input`` items (messages, ``function_call``,
  ``function_call_output``) are read as the equivalent chat messages, so the same script answers
  both APIs; the answer has ``message`` and ``function_call`` output items and the usage
  (``input_tokens``, ``output_tokens`` and their details). With ``"stream": true`` it is the API's
  server-sent events: ``response.created``, per item ``output_item.added``, text or argument deltas,
  ``output_item.done``, then ``response.completed`` carrying the full response and its usage.
- ``GET /v1/models``: the models of the script.
- Errors on demand: any HTTP status (429, 500, ...), delays, and timeouts.

Python API::

    from swarmlens.scripted_llm import ScriptedLLMServer
    with ScriptedLLMServer(script) as llm:          # or llm = ScriptedLLMServer(script).start(); llm.stop()
        client = openai.OpenAI(base_url=llm.url, api_key="scripted", max_retries=0)
        swarm = Swarm(client)
        ...
        llm.requests                                # every request body received, in order

From the command line: ``swarmlens llm-server --port 8400 --script support.json`` prints the URL
and serves until interrupted. ``python -m swarmlens.scripted_llm`` takes the same flags, and so does
``python -I -S reporter/swarmlens/scripted_llm`` from a checkout, which needs nothing but the standard
library (the instrumentation's tests run it so, where swarmlens is not installed). A test in another
process reads what the server received with ``GET /_scripted/requests`` (``{"requests": [body,
...]}``) and clears it with ``POST /_scripted/reset`` (as ``requests`` and ``reset()`` below).

Script format
-------------

A script is a dict (or the same thing as a JSON file)::

    {
      "model": "gpt-4o-mini",        # optional: model reported in responses (default: the requested one)
      "usage": true,                 # optional: false = a provider that never reports usage
      "chunk_size": 8,               # optional: characters per streamed content/argument piece
      "models": ["gpt-4o"],          # optional: what GET /v1/models lists
      "agents": {                    # required, in matching order
        "triage": {
          "match": "[agent:triage]", # substring of the system message (Swarm: the agent's
                                     # instructions) that identifies the agent; default: the key
          "name": "Triage",          # the Swarm agent's name, see "Reply order"; default: the key
          "replies": [ REPLY, ... ], # in order
          "fallback": REPLY          # optional: answer once the replies are used up
        }
      },
      "fallback": REPLY              # optional: answer when no agent matches or one ran out
    }

A REPLY is::

    {
      "content": "text",                                     # assistant text (may be absent with tool calls)
      "tool_calls": [{"name": "transfer_to_billing",         # functions to call, in order
                      "arguments": {"invoice": "INV-1"},     # an object or a JSON string
                      "id": "call_1"}],                      # optional; default: a stable hash
      "usage": {"prompt_tokens": 120, "completion_tokens": 15,
                "cached_tokens": 40, "reasoning_tokens": 5}, # optional, see "Usage"
      "finish_reason": "stop",                               # default: "tool_calls" with tool calls, else "stop"
      "model": "gpt-4o",                                     # optional: model reported for this reply
      "when": "refund",                                      # optional: only used when the last user
                                                             # message contains it (case-insensitive;
                                                             # a list means any of them)
      "delay": 0.2, "chunk_delay": 0.01, "chunk_size": 4,    # optional timing / chunking
      "error": {"status": 500},                              # optional: always fail at this step
      "fail_first": [{"status": 429, "retry_after": 0},      # optional: the first attempts of this exact
                     {"status": 500}]                        # request fail in this order, then it succeeds
    }

An error is ``{"status": 429 | 500 | ..., "message": ..., "type": ..., "code": ...,
"retry_after": seconds, "delay": seconds}`` and is answered as the API's error body. ``"status":
"timeout"`` holds the request for ``delay`` seconds (default 30) and closes the connection
without an answer, so a client timeout shorter than that fires.

Reply order: for each request the server finds the agent (first agent in script order whose
``match`` is in the system message), keeps the replies whose ``when`` matches, and answers the
n-th of them, n being the number of earlier turns of the same task that this agent answered.
A task is identified by its opening (the non-system messages up to the last user message); its
turns are the assistant messages after that, and the server remembers which agent answered
each turn (turns it never saw count for the agent whose ``name`` equals their ``sender``). So
the same scenario gives the same answers when repeated and in concurrent threads, streamed or
not, without any reset. ``fail_first`` counts attempts per identical request;
``ScriptedLLMServer.reset()`` clears both memories.

Usage: when the reply gives ``usage`` it is reported as is (``total_tokens`` is the sum;
``cached_tokens`` becomes ``prompt_tokens_details.cached_tokens``, ``reasoning_tokens``
``completion_tokens_details.reasoning_tokens``). Otherwise it is computed by
:func:`default_usage`: prompt tokens = ceil(characters of all request message texts and
tool-call names/arguments / 4), completion tokens = ceil(characters of the reply's content,
tool names and arguments / 4), each at least 1. With ``"usage": false`` (or
``ScriptedLLMServer(script, usage=False)``, ``--no-usage``) no usage is ever reported, not even
with ``include_usage``.
"""

from .script import (
    Script,
    ScriptError,
    default_usage,
    estimate_tokens,
    load_script,
    openai_usage,
)
from .server import ScriptedLLMServer

__all__ = [
    "ScriptedLLMServer",
    "Script",
    "ScriptError",
    "load_script",
    "default_usage",
    "estimate_tokens",
    "openai_usage",
]

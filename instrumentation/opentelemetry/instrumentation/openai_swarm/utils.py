"""Pure helpers of the Swarm instrumentation: settings, sanitizing, usage, user lookup.

Nothing here starts spans or touches Swarm; everything is unit-tested on its own.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping as _Mapping  # for isinstance: typing.Mapping's check costs several calls more
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

from opentelemetry import baggage
from opentelemetry import context as otel_context

logger = logging.getLogger("opentelemetry.instrumentation.openai_swarm")

# --------------------------------------------------------------------------------------
# Attribute names (GenAI semantic conventions where they exist, swarm.* where they do not)
# --------------------------------------------------------------------------------------
# The conventions' names come from the semantic-conventions package (its incubating GenAI, enduser
# and session attributes) where the installed release has them; the names are the fallbacks, so an app
# on an older release (opentelemetry-semantic-conventions 0.59b0, beside OpenTelemetry 1.38, lacks
# GEN_AI_REQUEST_STREAM among others) gets the same attribute names. Only the swarm.* names, which the
# conventions do not define, are ours alone.
import importlib  # noqa: E402


def _semconv(module: str, **names: str) -> list[str]:
    try:
        found = importlib.import_module("opentelemetry.semconv." + module)
    except ImportError:
        found = None
    return [getattr(found, constant, name) for constant, name in names.items()]


(GEN_AI_AGENT_NAME, GEN_AI_CONVERSATION_ID, GEN_AI_INPUT_MESSAGES, GEN_AI_OPERATION_NAME, GEN_AI_OUTPUT_MESSAGES,
 GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_REQUEST_STREAM, GEN_AI_RESPONSE_FINISH_REASONS, GEN_AI_RESPONSE_ID,
 GEN_AI_RESPONSE_MODEL, GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, GEN_AI_TOOL_CALL_ARGUMENTS, GEN_AI_TOOL_CALL_ID,
 GEN_AI_TOOL_CALL_RESULT, GEN_AI_TOOL_DESCRIPTION, GEN_AI_TOOL_NAME, GEN_AI_TOOL_TYPE,
 GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS,
 GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, GEN_AI_WORKFLOW_NAME) = _semconv(
    "_incubating.attributes.gen_ai_attributes",
    GEN_AI_AGENT_NAME="gen_ai.agent.name",
    GEN_AI_CONVERSATION_ID="gen_ai.conversation.id",
    GEN_AI_INPUT_MESSAGES="gen_ai.input.messages",
    GEN_AI_OPERATION_NAME="gen_ai.operation.name",
    GEN_AI_OUTPUT_MESSAGES="gen_ai.output.messages",
    GEN_AI_PROVIDER_NAME="gen_ai.provider.name",
    GEN_AI_REQUEST_MODEL="gen_ai.request.model",
    GEN_AI_REQUEST_STREAM="gen_ai.request.stream",
    GEN_AI_RESPONSE_FINISH_REASONS="gen_ai.response.finish_reasons",
    GEN_AI_RESPONSE_ID="gen_ai.response.id",
    GEN_AI_RESPONSE_MODEL="gen_ai.response.model",
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK="gen_ai.response.time_to_first_chunk",
    GEN_AI_TOOL_CALL_ARGUMENTS="gen_ai.tool.call.arguments",
    GEN_AI_TOOL_CALL_ID="gen_ai.tool.call.id",
    GEN_AI_TOOL_CALL_RESULT="gen_ai.tool.call.result",
    GEN_AI_TOOL_DESCRIPTION="gen_ai.tool.description",
    GEN_AI_TOOL_NAME="gen_ai.tool.name",
    GEN_AI_TOOL_TYPE="gen_ai.tool.type",
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS="gen_ai.usage.cache_read.input_tokens",
    GEN_AI_USAGE_INPUT_TOKENS="gen_ai.usage.input_tokens",
    GEN_AI_USAGE_OUTPUT_TOKENS="gen_ai.usage.output_tokens",
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS="gen_ai.usage.reasoning.output_tokens",
    GEN_AI_WORKFLOW_NAME="gen_ai.workflow.name",
)
(ENDUSER_ID,) = _semconv("_incubating.attributes.enduser_attributes", ENDUSER_ID="enduser.id")
(SESSION_ID,) = _semconv("_incubating.attributes.session_attributes", SESSION_ID="session.id")
(ERROR_TYPE,) = _semconv("attributes.error_attributes", ERROR_TYPE="error.type")
SERVER_ADDRESS, SERVER_PORT = _semconv("attributes.server_attributes", SERVER_ADDRESS="server.address",
                                       SERVER_PORT="server.port")

SWARM_TASK_INPUT = "swarm.task.input"
SWARM_TASK_OUTPUT = "swarm.task.output"
SWARM_TASK_AGENTS = "swarm.task.agents"
SWARM_TASK_FINAL_AGENT = "swarm.task.final_agent"
SWARM_TASK_HANDOFFS = "swarm.task.handoffs"
SWARM_TASK_TURNS = "swarm.task.turns"
SWARM_TASK_USAGE_INPUT_TOKENS = "swarm.task.usage.input_tokens"
SWARM_TASK_USAGE_OUTPUT_TOKENS = "swarm.task.usage.output_tokens"
SWARM_TASK_USAGE_CACHE_READ_INPUT_TOKENS = "swarm.task.usage.cache_read.input_tokens"
SWARM_TASK_USAGE_REASONING_OUTPUT_TOKENS = "swarm.task.usage.reasoning.output_tokens"
SWARM_AGENT_TURNS = "swarm.agent.turns"
SWARM_HANDOFF_FROM = "swarm.handoff.from"
SWARM_HANDOFF_TO = "swarm.handoff.to"
SWARM_USAGE_ESTIMATED = "swarm.usage.estimated"

# The conventions' event that carries a model call's messages when content goes to events.
EVENT_INFERENCE_DETAILS = "gen_ai.client.inference.operation.details"

PROVIDER_OPENAI = "openai"
WORKFLOW_NAME = "swarm"

BAGGAGE_USER = "enduser.id"
BAGGAGE_SESSION = "session.id"

# One token per this many characters when the API reports no usage (a common rule of thumb
# for English text with OpenAI tokenizers; documented in docs/instrumentation.md).
CHARS_PER_TOKEN = 4

TRUNCATION_MARK = "…"

# --------------------------------------------------------------------------------------
# Settings: read here and only here
# --------------------------------------------------------------------------------------


def _parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_genai_content(value: str) -> bool:
    # The official GenAI instrumentations also accept content modes; the ones that put
    # content on spans mean "on" for us.
    v = value.strip().lower()
    if v in ("span_only", "span_and_event"):
        return True
    if v in ("event_only", "no_content", "none"):
        return False
    return _parse_bool(v)


def _parse_positive_int(value: str) -> int:
    n = int(value.strip())
    if n < 16:
        raise ValueError(f"must be at least 16, got {n}")
    return n


def _parse_key(value: str) -> str:
    return value.strip()


@dataclass(frozen=True)
class Setting:
    env: str
    option: str  # keyword of SwarmInstrumentor().instrument(...) that overrides the variable
    default: Any
    parse: Callable[[str], Any]
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting("OTEL_INSTRUMENTATION_SWARM_CAPTURE_CONTENT", "capture_content", True, _parse_bool,
            "Record the task input (last user message) and output (final assistant message) on the root span."),
    Setting("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "capture_messages", False, _parse_genai_content,
            "Record full message lists (gen_ai.input.messages / gen_ai.output.messages) "
            "on chat spans, and tool arguments and results on execute_tool spans."),
    Setting("OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH", "max_attribute_length", 4096, _parse_positive_int,
            "Longest string attribute value, in characters; longer values are cut and end with '…'. "
            "Applies to every text value, each message text inside message lists included."),
    Setting("OTEL_INSTRUMENTATION_SWARM_USER_KEY", "user_key", "user_id", _parse_key,
            "Key of Swarm's context_variables holding the end user id (after the explicit API and baggage); "
            "empty disables the lookup."),
    Setting("OTEL_INSTRUMENTATION_SWARM_SESSION_KEY", "session_key", "session_id", _parse_key,
            "Key of Swarm's context_variables holding the session id; empty disables the lookup."),
    Setting("OTEL_INSTRUMENTATION_SWARM_STREAM_USAGE", "stream_usage", True, _parse_bool,
            "Ask for exact usage on streamed completions (stream_options.include_usage) when the caller did not "
            "set stream_options; turn off for providers that reject the option."),
)


@dataclass(frozen=True)
class Config:
    capture_content: bool = True
    capture_messages: bool = False
    max_attribute_length: int = 4096
    user_key: str = "user_id"
    session_key: str = "session_id"
    stream_usage: bool = True
    # From the same variable as capture_messages: `event_only` / `span_and_event` put the chat messages
    # in a span event gen_ai.client.inference.operation.details (event_only: not in attributes).
    message_events: bool = False


def load_config(overrides: Optional[Mapping[str, Any]] = None,
                environ: Optional[Mapping[str, str]] = None) -> Config:
    """Settings from keyword overrides, then the environment, then defaults.

    A malformed environment value is logged and replaced by the default: configuration must
    never stop the application.
    """
    env = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if overrides.get(s.option) is not None:
            values[s.option] = overrides[s.option]
            continue
        raw = env.get(s.env)
        if raw is None:
            values[s.option] = s.default
            continue
        try:
            values[s.option] = s.parse(raw)
        except ValueError as exc:
            logger.warning("ignoring %s=%r (%s); using %r", s.env, raw, exc, s.default)
            values[s.option] = s.default
    mode = overrides.get("message_events")
    if mode is None:
        raw = (env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") or "").strip().lower()
        mode = raw in ("event_only", "span_and_event")
    values["message_events"] = bool(mode)
    return Config(**values)


# --------------------------------------------------------------------------------------
# Sanitizing
# --------------------------------------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(TRUNCATION_MARK), 0)] + TRUNCATION_MARK


def clean_str(value: Any, limit: int) -> str:
    """Any value as a valid-UTF-8 string of at most `limit` characters.

    bytes are decoded as UTF-8 with replacement; strings holding lone surrogates (what
    ``surrogateescape`` makes of invalid UTF-8) get them replaced, since exporters cannot
    encode them; anything else goes through str(), and a failing __str__ gives a placeholder.
    """
    if type(value) is str:
        if len(value) <= limit and value.isascii():  # the common case, kept cheap
            return value
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", "replace")
    else:
        try:
            text = str(value)
        except Exception:  # a broken __str__ must not break the app
            text = f"<unprintable {type(value).__name__}>"
    text = truncate(text, limit)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_value(value: Any, limit: int) -> Any:
    """An attribute value the OTel SDK and exporters accept: bool/int/float/str or a homogeneous
    sequence of str; anything else becomes a string."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [clean_str(v, limit) for v in value]
    return clean_str(value, limit)


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if type(content) is str:
        return content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        out = []
        for part in content:
            if isinstance(part, _Mapping):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
            elif isinstance(part, str):
                out.append(part)
        return "".join(out)
    return str(content)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if type(obj) is dict:
        return obj.get(key, default)
    if isinstance(obj, _Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def last_user_message(messages: Any) -> Optional[str]:
    """The message that started the task: the last user message of the input list."""
    if not isinstance(messages, (list, tuple)):
        return None
    for m in reversed(messages):
        if _get(m, "role") == "user":
            return content_text(_get(m, "content"))
    return None


def final_assistant_message(messages: Any) -> Optional[str]:
    """Content of the last assistant message, when it has text (a final tool-call turn has none)."""
    if not isinstance(messages, (list, tuple)):
        return None
    for m in reversed(messages):
        if _get(m, "role") == "assistant":
            text = content_text(_get(m, "content"))
            return text or None
    return None


# --------------------------------------------------------------------------------------
# Usage
# --------------------------------------------------------------------------------------


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: Optional[int] = None
    reasoning_output_tokens: Optional[int] = None


def _int(v: Any) -> Optional[int]:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


# Usage classes known not to be mappings (the openai client's CompletionUsage): isinstance against
# the Mapping ABC runs Python code of the abc module on every call, so the answer is kept per class.
_ATTRIBUTE_USAGE_TYPES: set = set()


def _attribute_usage(usage: Any, cls: type) -> bool:
    if isinstance(usage, _Mapping):
        return False
    if getattr(usage, "__class__", None) is cls and len(_ATTRIBUTE_USAGE_TYPES) < 64:  # not a proxy
        _ATTRIBUTE_USAGE_TYPES.add(cls)
    return True


def usage_from_response(usage: Any) -> Optional[Usage]:
    """Usage of an OpenAI response (object or dict); None when the API reported none."""
    if usage is None:
        return None
    cls = type(usage)
    if cls is not dict:  # the openai client's CompletionUsage: plain attributes, fast path
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if type(prompt) is int and type(completion) is int and (cls in _ATTRIBUTE_USAGE_TYPES or _attribute_usage(usage, cls)):
            out = Usage(prompt, completion)
            details = getattr(usage, "prompt_tokens_details", None)
            if details is not None:
                out.cache_read_input_tokens = _int(getattr(details, "cached_tokens", None))
            details = getattr(usage, "completion_tokens_details", None)
            if details is not None:
                out.reasoning_output_tokens = _int(getattr(details, "reasoning_tokens", None))
            return out
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    out = Usage(prompt or 0, completion or 0)
    details = _get(usage, "prompt_tokens_details")
    if details is not None:
        out.cache_read_input_tokens = _int(_get(details, "cached_tokens"))
    details = _get(usage, "completion_tokens_details")
    if details is not None:
        out.reasoning_output_tokens = _int(_get(details, "reasoning_tokens"))
    return out


def estimate_tokens(text: str) -> int:
    """ceil(characters / 4): the documented estimate used when the API reports no usage."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def request_text(messages: Any) -> str:
    """What the estimate counts on the input side: every message's text plus tool-call names and arguments."""
    if not isinstance(messages, (list, tuple)):
        return ""
    parts: list[str] = []
    for m in messages:
        parts.append(content_text(_get(m, "content")))
        for call in _get(m, "tool_calls") or ():
            fn = _get(call, "function") or {}
            parts.append(str(_get(fn, "name") or ""))
            parts.append(str(_get(fn, "arguments") or ""))
    return "".join(parts)


# --------------------------------------------------------------------------------------
# Who the user is
# --------------------------------------------------------------------------------------

USER_CONTEXT_KEY = otel_context.create_key("openai_swarm.user")


@dataclass(frozen=True)
class UserInfo:
    user_id: Optional[str] = None
    session_id: Optional[str] = None
    conversation_id: Optional[str] = None


def _from_vars(context_variables: Any, key: str) -> Any:
    if not key or (type(context_variables) is not dict and not isinstance(context_variables, _Mapping)):
        return None
    value = context_variables.get(key)
    if value is None or value == "" or value == b"":
        return None
    return value  # cleaned (bytes decoded, non-strings stringified) by resolve_user


def resolve_user(ctx: Optional[otel_context.Context], context_variables: Any, config: Config) -> UserInfo:
    """The user of a task, by the contract's precedence: explicit API, baggage, context_variables."""
    if ctx is None:
        ctx = otel_context.get_current()
    explicit = ctx.get(USER_CONTEXT_KEY)
    user = session = conversation = None
    if explicit is not None and isinstance(explicit, UserInfo):
        user, session, conversation = explicit.user_id, explicit.session_id, explicit.conversation_id
    if user is None or session is None:
        bag = baggage.get_all(ctx)
        if bag:
            if user is None:
                user = bag.get(BAGGAGE_USER) or None
            if session is None:
                session = bag.get(BAGGAGE_SESSION) or None
    if user is None:
        user = _from_vars(context_variables, config.user_key)
    if session is None:
        session = _from_vars(context_variables, config.session_key)
    limit = config.max_attribute_length
    return UserInfo(
        clean_str(user, limit) if user is not None else None,
        clean_str(session, limit) if session is not None else None,
        clean_str(conversation, limit) if conversation is not None else None,
    )


def identity_attributes(user: UserInfo) -> dict[str, str]:
    """The attributes copied onto every span of a task: provider, user, session, conversation."""
    attrs = {GEN_AI_PROVIDER_NAME: PROVIDER_OPENAI}
    if user.user_id is not None:
        attrs[ENDUSER_ID] = user.user_id
    if user.session_id is not None:
        attrs[SESSION_ID] = user.session_id
    if user.conversation_id is not None:  # the conventions want it on agent and chat spans too
        attrs[GEN_AI_CONVERSATION_ID] = user.conversation_id
    return attrs


# --------------------------------------------------------------------------------------
# Message capture (opt-in), in the shape of the GenAI conventions' gen_ai.*.messages
# --------------------------------------------------------------------------------------


def _parts(message: Any, limit: int) -> list[dict]:
    parts: list[dict] = []
    role = _get(message, "role")
    text = content_text(_get(message, "content"))
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": clean_str(_get(message, "tool_call_id") or "", limit),
                      "response": clean_str(text, limit)})
        return parts
    if text:
        parts.append({"type": "text", "content": clean_str(text, limit)})
    for call in _get(message, "tool_calls") or ():
        fn = _get(call, "function") or {}
        parts.append({"type": "tool_call", "id": clean_str(_get(call, "id") or "", limit),
                      "name": clean_str(_get(fn, "name") or "", limit),
                      "arguments": clean_str(_get(fn, "arguments") or "", limit)})
    return parts


def messages_json(messages: Iterable[Any], limit: int, finish_reason: Optional[str] = None) -> str:
    out = []
    for m in messages:
        entry: dict[str, Any] = {"role": clean_str(_get(m, "role") or "", 64), "parts": _parts(m, limit)}
        if finish_reason is not None:
            entry["finish_reason"] = finish_reason
        out.append(entry)
    return json.dumps(out, ensure_ascii=False)


def error_type(exc: BaseException) -> str:
    """The fully qualified exception type (``openai.RateLimitError``; builtins bare, ``ValueError``):
    what the SDK records as the exception event's ``exception.type`` and what the official OpenAI
    instrumentations write as ``error.type``, so every span of a trace names an error alike."""
    cls = type(exc)
    module = cls.__module__
    if module and module != "builtins":
        return f"{module}.{cls.__qualname__}"
    return cls.__qualname__

"""The API reference page: /api/v1/openapi.json rendered as a page of our own (no script, no CDN),
linked from every page's menu. The page and the JSON come from the same document, so they never
disagree."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request
from markupsafe import Markup, escape

from swarmlens.web.common import page
from swarmlens.web.openapi import document

bp = Blueprint("docs", __name__)

METHODS = ("get", "post", "put", "patch", "delete")


def text(value: str) -> Markup:
    """A description as the document writes it: escaped, with `backticks` as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(value or ""))))


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/") else None


def type_of(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A schema as the page shows it: a type text, and the name of a schema it links to."""
    schema = schema or {}
    name = _ref_name(schema)
    if name:
        return {"text": name, "link": name}
    if "oneOf" in schema or "anyOf" in schema:
        return {"text": " or ".join(type_of(s)["text"] for s in schema.get("oneOf") or schema["anyOf"]), "link": None}
    kind = schema.get("type", "object" if "properties" in schema else "any")
    if isinstance(kind, list):
        kind = " or ".join(k for k in kind)
    if kind == "array":
        inner = type_of(schema.get("items"))
        return {"text": f"array of {inner['text']}", "link": inner.get("link")}
    extra = []
    if schema.get("format"):
        extra.append(schema["format"])
    if "enum" in schema:
        extra.append("one of " + ", ".join(repr(v) if v != "" else "''" for v in schema["enum"]))
    for key, word in (("minimum", "min"), ("maximum", "max"), ("maxLength", "max length")):
        if key in schema:
            extra.append(f"{word} {schema[key]}")
    return {"text": kind + (f" ({'; '.join(extra)})" if extra else ""), "link": None}


def reference(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document shaped for the page: operations in path order, then the schemas."""
    responses = doc.get("components", {}).get("responses", {})
    operations = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            params = [{"name": p["name"], "in": p["in"], "required": bool(p.get("required") or p["in"] == "path"),
                       "type": type_of(p.get("schema")), "description": text(p.get("description", ""))}
                      for p in op.get("parameters", [])]
            body = None
            if op.get("requestBody"):
                schema = op["requestBody"].get("content", {}).get("application/json", {}).get("schema")
                body = {"type": type_of(schema), "required": op["requestBody"].get("required", False)}
            outs = []
            for code, resp in sorted(op.get("responses", {}).items()):
                name = _ref_name(resp)
                resp = responses.get(name, resp) if name else resp
                schema = resp.get("content", {}).get("application/json", {}).get("schema")
                outs.append({"code": code, "description": resp.get("description", ""),
                             "type": type_of(schema) if schema else None})
            public = op.get("security") == []
            operations.append({"id": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "").strip("-"),
                               "method": method.upper(), "path": path, "summary": text(op.get("summary", "")),
                               "parameters": params, "body": body, "responses": outs, "public": public})
    schemas = []
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        props = [{"name": k, "type": type_of(v), "required": k in required,
                  "description": text(v.get("description", ""))}
                 for k, v in schema.get("properties", {}).items()]
        schemas.append({"name": name, "type": type_of({k: v for k, v in schema.items() if k != "properties"}),
                        "description": text(schema.get("description", "")), "properties": props})
    info = doc.get("info", {})
    return {"title": info.get("title", "API"), "version": info.get("version", ""),
            "description": text(info.get("description", "")), "openapi": doc.get("openapi", ""),
            "operations": operations, "schemas": schemas}


@bp.route("/docs/api")
def api_reference():
    ctx = reference(document())
    ctx["base_url"] = request.host_url.rstrip("/")
    return page("api_docs.html", ctx)

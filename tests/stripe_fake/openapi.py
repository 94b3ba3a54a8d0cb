"""Stripe OpenAPI lookup, form decoding and request validation for the fake."""

from __future__ import annotations

import functools
import gzip
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

SPEC_ENV = "STRIPE_OPENAPI_SPEC"
SPEC_FILENAME = "openapi-spec3-2024-04-10.json.gz"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# A form key is a name followed by any number of [segment] parts.
_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")
_INT_RE = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True)
class Problem:
    """One reason Stripe would refuse a request."""

    param: str | None
    message: str


class FormError(ValueError):
    """A form body that cannot be decoded unambiguously."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def default_spec_path() -> Path:
    """Return the spec path: $STRIPE_OPENAPI_SPEC or <repo>/../shared/stripe/."""
    override = os.environ.get(SPEC_ENV)
    if override:
        return Path(override)
    # tests/stripe_fake/openapi.py -> parents[2] is the repository root.
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "stripe" / SPEC_FILENAME


def decode_form(raw: str) -> dict[str, Any]:
    """Decode Stripe's bracket notation (a[b][0]=x, a[]=y) into dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY_RE.match(key)
        if match is None:
            raise FormError(key, f"Invalid parameter name: {key}")
        parts = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
        node = root
        for depth, part in enumerate(parts):
            # "[]" appends, which is the same as the next free index.
            name = str(len(node)) if part == "" else part
            label = _label(parts[: depth + 1])
            last = depth == len(parts) - 1
            if last:
                if name in node:
                    kind = "Duplicate" if isinstance(node[name], str) else "Conflicting"
                    raise FormError(label, f"{kind} parameter: {label}")
                node[name] = value
            else:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    raise FormError(label, f"Conflicting parameter: {label}")
                node = child
    # The top level is always a hash of parameter names, even if they look numeric.
    return {k: _listify(v) for k, v in root.items()}


def _label(parts: list[str]) -> str:
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])


def _listify(node: Any) -> Any:
    """Turn dicts keyed 0..n-1 into lists; the schema check converts back if needed."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    keys = list(converted)
    if keys and all(k.isdigit() for k in keys):
        indices = sorted(int(k) for k in keys)
        if indices == list(range(len(keys))):
            return [converted[str(i)] for i in indices]
    return converted


class StripeSpec:
    """Path matching and parameter validation over Stripe's OpenAPI document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.version: str = document.get("info", {}).get("version", "")
        self._paths: dict[str, dict[str, Any]] = dict(document["paths"])
        self._templates: dict[int, list[tuple[str, list[str]]]] = {}
        for template in self._paths:
            segments = template.strip("/").split("/")
            self._templates.setdefault(len(segments), []).append((template, segments))

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        """Return the template and path parameters for a concrete path."""
        segments = path.strip("/").split("/")
        best: tuple[int, str, dict[str, str]] | None = None
        for template, tsegs in self._templates.get(len(segments), []):
            params: dict[str, str] = {}
            literal = 0
            for seg, tseg in zip(segments, tsegs, strict=True):
                if tseg.startswith("{") and tseg.endswith("}"):
                    if not seg:
                        break
                    params[tseg[1:-1]] = seg
                elif seg == tseg:
                    literal += 1
                else:
                    break
            else:
                # Prefer /v1/customers/search over /v1/customers/{customer}.
                if best is None or literal > best[0]:
                    best = (literal, template, params)
        return None if best is None else (best[1], best[2])

    def operation(self, template: str, method: str) -> dict[str, Any] | None:
        """Return the operation object for a template and HTTP method."""
        op = self._paths.get(template, {}).get(method.lower())
        return op if isinstance(op, dict) else None

    def validate(
        self,
        method: str,
        template: str,
        query: Mapping[str, Any],
        body: Mapping[str, Any],
        *,
        extra_params: Iterable[str] = (),
    ) -> list[Problem]:
        """Check a request's query and form body against the operation."""
        op = self.operation(template, method)
        if op is None:
            return [Problem(None, f"Unrecognized request URL ({method.upper()}: {template})")]
        extra = set(extra_params)
        problems: list[Problem] = []
        query_schema = _query_schema(op)
        _check_object({k: v for k, v in query.items() if k not in extra}, query_schema, "", problems)
        if method.upper() == "GET" or method.upper() == "DELETE":
            if body:
                problems.append(Problem(None, f"{method.upper()} requests take no body"))
            return problems
        schema = _body_schema(op)
        _check_object({k: v for k, v in body.items() if k not in extra}, schema, "", problems)
        return problems


def _query_schema(op: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for param in op.get("parameters", []):
        if param.get("in") != "query":
            continue
        props[param["name"]] = param.get("schema", {})
        if param.get("required"):
            required.append(param["name"])
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _body_schema(op: Mapping[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {})
    form = content.get(FORM_CONTENT_TYPE)
    if form is None:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    schema: dict[str, Any] = form.get("schema", {})
    return schema


def _join(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _check_object(value: Mapping[str, Any], schema: Mapping[str, Any], name: str, out: list[Problem]) -> None:
    props: Mapping[str, Any] = schema.get("properties", {})
    addl = schema.get("additionalProperties")
    for req in schema.get("required", []):
        if req not in value:
            out.append(Problem(_join(name, req), f"Missing required param: {_join(name, req)}."))
    for key, item in value.items():
        sub = _join(name, key)
        if key in props:
            _check(item, props[key], sub, out)
        elif isinstance(addl, dict):
            _check(item, addl, sub, out)
        elif addl is True or (addl is None and not props):
            continue  # a free-form object
        else:
            # Stripe rejects unknown keys even where the spec omits additionalProperties.
            out.append(Problem(sub, f"Received unknown parameter: {sub}"))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def _check(value: Any, schema: Mapping[str, Any], name: str, out: list[Problem]) -> None:
    if "anyOf" in schema:
        branches: list[list[Problem]] = []
        for sub_schema in schema["anyOf"]:
            found: list[Problem] = []
            _check(value, sub_schema, name, found)
            if not found:
                return
            branches.append(found)
        # Report the branch whose shape matches the value, as Stripe does.
        for sub_schema, found in zip(schema["anyOf"], branches, strict=True):
            if _shape(sub_schema) == _kind(value):
                out.extend(found)
                return
        out.append(Problem(name, f"Invalid value for {name}: {_describe(value)}"))
        return
    expected = schema.get("type")
    if expected == "object":
        if isinstance(value, list):
            value = {str(i): v for i, v in enumerate(value)}
        if not isinstance(value, dict):
            out.append(Problem(name, f"Invalid object: {name} must be a hash"))
            return
        _check_object(value, schema, name, out)
        return
    if expected == "array":
        if isinstance(value, dict) and value and all(k.isdigit() for k in value):
            value = [value[k] for k in sorted(value, key=int)]
        if not isinstance(value, list):
            out.append(Problem(name, f"Invalid array: {name} must be an array"))
            return
        items = schema.get("items", {})
        for i, item in enumerate(value):
            _check(item, items, f"{name}[{i}]", out)
        return
    if not isinstance(value, str):
        out.append(Problem(name, f"Invalid {expected or 'value'}: {name} must be a scalar"))
        return
    if expected == "integer" and not _INT_RE.match(value):
        out.append(Problem(name, f"Invalid integer: {value}"))
        return
    if expected == "number" and not _is_number(value):
        out.append(Problem(name, f"Invalid decimal: {value}"))
        return
    if expected == "boolean" and value not in ("true", "false"):
        out.append(Problem(name, f"Invalid boolean: {value}"))
        return
    if expected == "string":
        max_length = schema.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            out.append(Problem(name, f"Invalid string: {name} is longer than {max_length}"))
            return
        if schema.get("format") == "decimal" and not _is_number(value):
            out.append(Problem(name, f"Invalid decimal: {value}"))
            return
    enum = schema.get("enum")
    if enum is not None and value not in [str(e) for e in enum]:
        allowed = ", ".join(repr(e) for e in enum)
        out.append(Problem(name, f"Invalid {name}: must be one of {allowed}"))


def _shape(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    return kind if kind in ("object", "array") else "scalar"


def _describe(value: Any) -> str:
    return "a hash" if isinstance(value, dict) else repr(value)[:80]


def _is_number(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> StripeSpec:
    with gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8") as handle:
        return StripeSpec(json.load(handle))


def load_spec(path: str | os.PathLike[str] | None = None) -> StripeSpec:
    """Load (once per path) and return the Stripe OpenAPI description."""
    resolved = Path(path) if path is not None else default_spec_path()
    if not resolved.is_file():
        raise FileNotFoundError(f"Stripe OpenAPI spec not found at {resolved}; set {SPEC_ENV} to its path")
    return _load(str(resolved.resolve()))

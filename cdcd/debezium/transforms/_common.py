"""What the transforms share: Connect-style property parsing, header values, JSON schema inference.

Kafka Connect writes record headers with ``SimpleHeaderConverter`` (a string as
its UTF-8 text, numbers and booleans as their text) and infers schemas for
expanded JSON with Debezium's ``JsonSchemaData``; both are reproduced here so the
outbox router and the unwrap transform print exactly what Debezium's SMTs do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from cdcd.errors import ConfigError

_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)


# --- properties ------------------------------------------------------------------------

def select_properties(props: Mapping[str, Any], prefix: str, known: Mapping[str, str],
                      what: str) -> dict[str, Any]:
    """Map ``prefix + property`` keys to attribute names; an unknown key is a typo, so it is an error."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name not in known:
            raise ConfigError(f"{key}: not a {what} option (known: {', '.join(sorted(known))})")
        out[known[name]] = value
    return out


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def as_list(value: Any) -> tuple[str, ...]:
    """A TOML list or a Connect-style comma-separated string."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def as_optional_str(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def java_regex(pattern: str, key: str) -> re.Pattern[str]:
    """Compile a Java regex: ``(?<name>...)`` named groups become Python's ``(?P<name>...)``."""
    try:
        return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))
    except re.error as exc:
        raise ConfigError(f"{key}: bad regular expression {pattern!r}: {exc}") from None


def parse_replacement(text: str, regex: re.Pattern[str], key: str) -> tuple[str | int, ...]:
    """Java ``Matcher.replaceFirst`` syntax (``$1``, ``${name}``, ``\\`` escapes), checked once.

    Literals come back as ``str``, group references as the group's number, for
    ``expand_replacement``.
    """
    parts: list[str | int] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise ConfigError(f"{key}: {text!r} ends with a lone backslash")
            literal.append(text[i + 1])
            i += 2
        elif c == "$":
            if literal:
                parts.append("".join(literal))
                literal = []
            if text.startswith("${", i):
                end = text.find("}", i)
                name = text[i + 2:end] if end > 0 else ""
                if not name or name not in regex.groupindex:
                    raise ConfigError(f"{key}: {text!r} names group {name!r}, which {regex.pattern!r} lacks")
                parts.append(regex.groupindex[name])
                i = end + 1
            else:
                j = i + 1
                while j < n and text[j].isdigit() and int(text[i + 1:j + 1]) <= regex.groups:
                    j += 1
                if j == i + 1:
                    raise ConfigError(f"{key}: {text!r}: '$' must be followed by an existing group number or {{name}}")
                parts.append(int(text[i + 1:j]))
                i = j
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def expand_replacement(parts: tuple[str | int, ...], match: re.Match[str]) -> str:
    return "".join(p if isinstance(p, str) else (match.group(p) or "") for p in parts)


# --- headers ---------------------------------------------------------------------------

def header_bytes(value: Any) -> bytes | None:
    """A header value as ``SimpleHeaderConverter`` writes it; None for SQL NULL."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return str(value).encode("ascii")
    return orjson.dumps(value)


# --- JSON -> Connect schema and data (Debezium's JsonSchemaData) ------------------------

class ExpansionError(ValueError):
    """The JSON cannot be given a Connect schema (Debezium then keeps the payload as a string)."""


def _number_schema(value: int | float) -> dict[str, Any]:
    if isinstance(value, int) and _INT32[0] <= value <= _INT32[1]:
        return {"type": "int32", "optional": True}
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return {"type": "int64", "optional": True}
    return {"type": "double", "optional": True}


def infer_schema(key: str | None, node: Any, null_as_bytes: bool = False) -> dict[str, Any] | None:
    """The schema ``JsonSchemaData.toConnectSchema`` infers; None for JSON null and empty arrays.

    Objects become optional structs named after their path (``payload``,
    ``payload.lineItems``); Java's string concatenation makes a null key ``null``.
    """
    if isinstance(node, str):
        return {"type": "string", "optional": True}
    if isinstance(node, bool):
        return {"type": "boolean", "optional": True}
    if isinstance(node, int | float):
        return _number_schema(node)
    if isinstance(node, list):
        if not node:
            return None
        return {"type": "array", "items": _items_schema(key, node, null_as_bytes), "optional": True}
    if isinstance(node, dict):
        fields: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name, value in node.items():
            schema = infer_schema(f"{'null' if key is None else key}.{name}", value, null_as_bytes)
            if schema is not None and name not in seen:
                fields.append({**schema, "field": name})
                seen.add(name)
        out: dict[str, Any] = {"type": "struct", "fields": fields, "optional": True}
        if key is not None:
            out["name"] = key
        return out
    if node is None and null_as_bytes:
        return {"type": "bytes", "optional": True}
    return None


def _json_kind(node: Any) -> str:
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, int | float):
        return "number"
    return type(node).__name__


def _items_schema(key: str | None, array: list[Any], null_as_bytes: bool) -> dict[str, Any]:
    """Arrays must be homogeneous (numbers of one width); arrays of objects merge their fields."""
    sample: Any = None
    for element in array:
        if element is None:
            continue
        if sample is None:
            sample = element
        elif _json_kind(element) != _json_kind(sample):
            raise ExpansionError(f"array {key!r} is not homogeneous")
        elif _json_kind(sample) == "number" and _number_schema(element) != _number_schema(sample):
            raise ExpansionError(f"array {key!r} mixes number types")
    if isinstance(sample, dict):
        merged: dict[str, Any] | None = None
        distinct: list[dict[str, Any]] = []
        for element in array:
            if isinstance(element, dict):
                schema = infer_schema(key, element, null_as_bytes)
                if schema is not None and schema not in distinct:
                    distinct.append(schema)
        for schema in distinct:
            merged = schema if merged is None else _merge(merged, schema)
        assert merged is not None
        return merged
    schema = None if sample is None else infer_schema(None, sample, null_as_bytes)
    if schema is None:
        raise ExpansionError(f"array {key!r} has no element with a recognizable schema")
    return schema


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """Union of fields; like ``SchemaUtil.copySchemaBasics`` the merged struct is not optional."""
    fields = {f["field"]: f for f in left["fields"]}
    for f in right["fields"]:
        old = fields.get(f["field"])
        if old is None or (old != f and old["type"] == "bytes" and f["type"] != "bytes"):
            fields[f["field"]] = f
    out: dict[str, Any] = {"type": "struct", "fields": list(fields.values()), "optional": False}
    if "name" in left:
        out["name"] = left["name"]
    return out


def to_connect_data(node: Any, schema: dict[str, Any]) -> Any:
    """The JSON value JsonConverter prints for ``node`` under ``schema`` (struct fields in schema order)."""
    if isinstance(node, dict):
        if schema["type"] != "struct":
            raise ExpansionError("an object where the schema has no struct")
        return {f["field"]: to_connect_data(node.get(f["field"]), f) for f in schema["fields"]}
    if isinstance(node, list):
        if schema["type"] != "array":
            raise ExpansionError("an array where the schema expects a struct")
        return [to_connect_data(e, schema["items"]) for e in node]
    if isinstance(node, int) and not isinstance(node, bool) and schema["type"] == "double":
        return float(node)
    return node


def expand_json(key: str, text: str, null_as_bytes: bool = False) -> tuple[dict[str, Any], Any]:
    """``(schema, value)`` for a JSON-object string, as EventRouter's ``table.expand.json.payload``."""
    if not text.startswith(("{", "[")):
        raise ExpansionError("not a JSON object or array")
    try:
        node = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ExpansionError(str(exc)) from None
    schema = infer_schema(key, node, null_as_bytes)
    if schema is None or schema["type"] != "struct":
        raise ExpansionError("only a JSON object expands to a struct")  # Debezium fails on arrays too
    return schema, to_connect_data(node, schema)


def without_field(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A field's schema as a record-level schema (JsonConverter prints no ``field`` there)."""
    return {k: v for k, v in schema.items() if k != "field"}

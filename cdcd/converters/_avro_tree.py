"""The Avro schema tree AvroData builds, and its printing as Avro's ``Schema.toJson`` (pure).

Identity matters: a record built once is defined once and then referred to by name,
in the namespace context Avro's printer keeps.
"""

from __future__ import annotations

from typing import Any, Final


class SchemaTranslationError(ValueError):
    """The Connect schema has no Avro form (e.g. a name Avro refuses)."""


class Record:
    __slots__ = ("name", "namespace", "doc", "fields", "props")

    def __init__(self, name: str, namespace: str | None, doc: str | None) -> None:
        self.name, self.namespace, self.doc = name, namespace, doc
        self.fields: list[dict[str, Any]] = []  # name, type (node), [doc], [default]
        self.props: dict[str, Any] = {}

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


class Fixed(Record):
    __slots__ = ("size",)


class Union:
    __slots__ = ("branches",)

    def __init__(self, branches: list[Any]) -> None:
        self.branches = branches


class Type:
    """A primitive, array or map with properties."""

    __slots__ = ("type", "props", "items", "values")

    def __init__(self, type_: str) -> None:
        self.type = type_
        self.props: dict[str, Any] = {}
        self.items: Any = None
        self.values: Any = None


NULL: Final = "null"


class Printer:
    def __init__(self) -> None:
        self.defined: dict[str, Any] = {}
        self.space: str | None = None

    def emit(self, node: Any) -> Any:
        if node == NULL:
            return NULL
        if isinstance(node, Union):
            return [self.emit(b) for b in node.branches]
        if isinstance(node, Record):
            return self._named(node)
        if not node.props and node.type not in ("array", "map"):
            return node.type
        out: dict[str, Any] = {"type": node.type}
        if node.type == "array":
            out["items"] = self.emit(node.items)
        elif node.type == "map":
            out["values"] = self.emit(node.values)
        out.update(node.props)
        return out

    def _named(self, node: Record) -> Any:
        full = node.full_name
        seen = self.defined.get(full)
        if seen is not None:
            if seen is not node:
                raise SchemaTranslationError(
                    f"two different Connect schemas are both named {full!r}; Avro needs one definition per name")
            return full if node.namespace != self.space else node.name
        self.defined[full] = node
        out: dict[str, Any] = {"type": "fixed" if isinstance(node, Fixed) else "record", "name": node.name}
        if node.namespace is not None:
            if node.namespace != self.space:
                out["namespace"] = node.namespace
        elif self.space is not None:
            out["namespace"] = ""
        if isinstance(node, Fixed):
            out["size"] = node.size
            out.update(node.props)
            return out
        saved, self.space = self.space, node.namespace
        if node.doc is not None:
            out["doc"] = node.doc
        fields = []
        for f in node.fields:
            entry = {"name": f["name"], "type": self.emit(f["type"])}
            if "doc" in f:
                entry["doc"] = f["doc"]
            if "default" in f:
                entry["default"] = f["default"]
            fields.append(entry)
        out["fields"] = fields
        out.update(node.props)
        self.space = saved
        return out

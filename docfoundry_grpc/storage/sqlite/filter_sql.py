"""`filters.Filter` → an SQLite boolean expression over a document's JSON metadata and path.

Every leaf is true or false, never NULL, so `NOT` means "does not match" even for documents
without the field. Values and JSON paths are bound parameters; the SQL text holds nothing
from the request.
"""

from __future__ import annotations

from typing import Any

from ...filters import All, AnyOf, Equals, Exists, Filter, Not, OneOf, PathPrefix, Range, Scalar
from ...filters import bounds as range_bounds

_NUMBER = "j.type IN ('integer', 'real')"


def compile_filter(node: Filter | None, *, metadata: str, path: str) -> tuple[str, list[Any]]:
    """(SQL, parameters) for `node`, with `metadata` and `path` the column expressions."""
    if node is None:
        return "1", []
    params: list[Any] = []
    return _compile(node, metadata, path, params), params


def _json_path(field: str) -> str:
    return f'$."{field}"'  # keys are validated: letters, digits, '_', '-', '.'


def _compile(node: Filter, metadata: str, path: str, params: list[Any]) -> str:
    if isinstance(node, Equals):
        return _any_element(metadata, node.field, [node.value], params)
    if isinstance(node, OneOf):
        return _any_element(metadata, node.field, list(node.values), params)
    if isinstance(node, Range):
        params.append(_json_path(node.field))
        tests = [_NUMBER]
        for op, value in range_bounds(node):
            tests.append(f"j.value {op} ?")
            params.append(value)
        return f"EXISTS (SELECT 1 FROM json_each({metadata}, ?) AS j WHERE {' AND '.join(tests)})"
    if isinstance(node, Exists):
        params.append(_json_path(node.field))
        return f"(json_type({metadata}, ?) IS NOT NULL)"
    if isinstance(node, PathPrefix):
        params.extend([node.prefix, node.prefix])
        return f"(substr({path}, 1, length(?)) = ?)"
    if isinstance(node, Not):
        return f"(NOT {_compile(node.filter, metadata, path, params)})"
    parts = [_compile(child, metadata, path, params) for child in node.filters]
    if isinstance(node, All):
        return "(" + " AND ".join(parts) + ")" if parts else "1"
    assert isinstance(node, AnyOf)
    return "(" + " OR ".join(parts) + ")" if parts else "0"


def _any_element(metadata: str, field: str, values: list[Scalar], params: list[Any]) -> str:
    """The field (or an element of its list) equals one of `values`, type for type."""
    params.append(_json_path(field))
    tests = []
    for value in values:
        if isinstance(value, bool):
            tests.append("j.type = ?")
            params.append("true" if value else "false")
        elif isinstance(value, str):
            tests.append("(j.type = 'text' AND j.value = ?)")
            params.append(value)
        else:
            tests.append(f"({_NUMBER} AND j.value = ?)")
            params.append(value)
    condition = " OR ".join(tests) if tests else "0"
    return f"EXISTS (SELECT 1 FROM json_each({metadata}, ?) AS j WHERE {condition})"

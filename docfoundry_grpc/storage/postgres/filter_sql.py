"""`filters.Filter` → a PostgreSQL boolean expression over a row's `metadata` (jsonb) and `path`.

Equality is jsonb containment (`@>`), which the GIN index on chunk metadata serves; a list
field matches when it contains the value. Every leaf is true or false, never NULL, so `NOT`
means "does not match" even for rows without the field. Values are bind parameters.
"""

from __future__ import annotations

import json
from typing import Any

from ...filters import All, AnyOf, Equals, Exists, Filter, Not, OneOf, PathPrefix, Range, Scalar
from ...filters import bounds as range_bounds


class _Params:
    def __init__(self, first: int) -> None:
        self.values: list[Any] = []
        self.first = first

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${self.first + len(self.values) - 1}"


def compile_filter(node: Filter | None, *, alias: str, first_param: int) -> tuple[str, list[Any]]:
    """(SQL, parameters) for `node` over `alias.metadata` and `alias.path`; placeholders
    are numbered from `first_param`."""
    if node is None:
        return "true", []
    params = _Params(first_param)
    return _compile(node, alias, params), params.values


def _compile(node: Filter, alias: str, params: _Params) -> str:
    metadata = f"{alias}.metadata"
    if isinstance(node, Equals):
        return _contains_any(metadata, node.field, [node.value], params)
    if isinstance(node, OneOf):
        return _contains_any(metadata, node.field, list(node.values), params)
    if isinstance(node, Range):
        key = params.add(node.field)
        number = (
            f"CASE WHEN jsonb_typeof({metadata} -> {key}) = 'number' "
            f"THEN ({metadata} ->> {key})::float8 END"
        )
        tests = [f"{number} {op} {params.add(value)}::float8" for op, value in range_bounds(node)]
        return f"coalesce({' AND '.join(tests)}, false)"  # validation: at least one bound
    if isinstance(node, Exists):
        return f"({metadata} ? {params.add(node.field)})"
    if isinstance(node, PathPrefix):
        return f"starts_with({alias}.path, {params.add(node.prefix)})"
    if isinstance(node, Not):
        return f"(NOT {_compile(node.filter, alias, params)})"
    parts = [_compile(child, alias, params) for child in node.filters]
    if isinstance(node, All):
        return "(" + " AND ".join(parts) + ")" if parts else "true"
    assert isinstance(node, AnyOf)
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _contains_any(metadata: str, field: str, values: list[Scalar], params: _Params) -> str:
    """Containment of {field: value}, or of {field: [value]} for a string in a list."""
    tests = []
    for value in values:
        tests.append(f"{metadata} @> {params.add(json.dumps({field: value}))}::jsonb")
        if isinstance(value, str):
            tests.append(f"{metadata} @> {params.add(json.dumps({field: [value]}))}::jsonb")
    return "(" + " OR ".join(tests) + ")" if tests else "false"

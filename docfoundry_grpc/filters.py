"""The typed filter of searches, listings and deletes: a small tree, free of any syntax.

Leaves test one metadata field (or the path); `All`, `AnyOf` and `Not` combine them. The
semantics, which both backends' SQL compilers implement and the contract suite checks:

- `Equals(field, v)`: the field holds `v`, or is a list of strings holding `v`. A boolean
  never equals a number (true is not 1), and numbers compare as numbers (1 equals 1.0).
- `OneOf(field, values)`: `Equals` for at least one of `values`.
- `Range(field, …)`: the field is a number within every bound given.
- `Exists(field)`: the document has the field, whatever its value.
- `PathPrefix(prefix)`: the document's path starts with `prefix` (byte-wise, case-sensitive).
- `All(...)` is true when empty, `AnyOf(...)` false when empty; `Not` negates, so a document
  without the field matches `Not(Equals(field, v))`.
"""

from __future__ import annotations

from dataclasses import dataclass

Scalar = str | float | bool


@dataclass(frozen=True)
class Equals:
    field: str
    value: Scalar


@dataclass(frozen=True)
class OneOf:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class PathPrefix:
    prefix: str


@dataclass(frozen=True)
class All:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    filter: Filter


Filter = Equals | OneOf | Range | Exists | PathPrefix | All | AnyOf | Not


def combine(*filters: Filter | None) -> Filter | None:
    """The conjunction of the filters given (None where there are none)."""
    present = tuple(f for f in filters if f is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else All(present)


def bounds(node: Range) -> list[tuple[str, float]]:
    """A range's bounds as (comparison operator, value) pairs, for the SQL compilers."""
    pairs = (("<", node.lt), ("<=", node.lte), (">", node.gt), (">=", node.gte))
    return [(op, value) for op, value in pairs if value is not None]

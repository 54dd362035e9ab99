"""The node catalogue, the preview of what a selector refreshes, and the node picker
(see runs.selectors)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from runs.selectors import syntax
from runs.selectors.syntax import (
    _NODE_FIELD,
    And,
    Attr,
    Expr,
    Or,
    SelectorError,
    SelectorWarning,
    Term,
    check,
    parse,
    quote,
)

__all__ = ["Catalogue", "LocationGroups", "Node", "NodeRecord", "Preview", "add_term", "preview",
           "term_for"]

# --- the catalogue ---


@dataclass(frozen=True)
class Node:
    """A node as the catalogue keeps it. `upstream` holds the ids of the nodes it reads."""

    id: str
    name: str
    location: str
    node_type: str
    upstream: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeRecord:
    """A node as cached from Coalesce, its dependencies named by (locationName, name)."""

    id: str
    name: str
    location: str
    node_type: str
    depends_on: tuple[tuple[str, str], ...] = ()


class Catalogue:
    """The nodes of one environment, indexed once so that preview() is fast.

    Nodes are kept in display order (location, name, id; case-insensitive). Upstream ids
    that name no node in the catalogue (and self-references) are ignored and counted in
    `unknown_dependencies`."""

    def __init__(self, nodes: Iterable[Node]):
        nodes = sorted(nodes, key=lambda n: (n.location.lower(), n.name.lower(), n.id))
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.by_id: dict[str, Node] = {}
        for node in self.nodes:
            if node.id in self.by_id:
                raise ValueError(f"Two nodes have the id {node.id!r}.")
            self.by_id[node.id] = node
        index = {node.id: i for i, node in enumerate(self.nodes)}
        self.unknown_dependencies = 0
        self._up: list[tuple[int, ...]] = []
        down: list[list[int]] = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            ups = []
            for up_id in dict.fromkeys(node.upstream):
                j = index.get(up_id)
                if j is None or j == i:
                    self.unknown_dependencies += 1
                    continue
                ups.append(j)
                down[j].append(i)
            self._up.append(tuple(ups))
        self._down = [tuple(d) for d in down]
        # attribute -> lowercased value -> node positions
        self._values: dict[str, dict[str, list[int]]] = {key: {} for key in _NODE_FIELD}
        for i, node in enumerate(self.nodes):
            for key, attr in _NODE_FIELD.items():
                self._values[key].setdefault(getattr(node, attr).lower(), []).append(i)

    @classmethod
    def from_records(cls, records: Iterable[NodeRecord]) -> Catalogue:
        """A catalogue whose upstream ids come from each record's (location, name) pairs,
        matched exactly. Pairs naming no node are ignored and counted in
        `unknown_dependencies`; a pair naming several nodes (Coalesce doesn't allow that)
        links to all of them."""
        records = list(records)
        by_pair: dict[tuple[str, str], list[str]] = {}
        for r in records:
            by_pair.setdefault((r.location, r.name), []).append(r.id)
        unknown = 0
        nodes = []
        for r in records:
            upstream: list[str] = []
            for pair in r.depends_on:
                ids = by_pair.get(tuple(pair))  # type: ignore[arg-type]
                if ids is None:
                    unknown += 1
                else:
                    upstream.extend(ids)
            nodes.append(Node(r.id, r.name, r.location, r.node_type, tuple(upstream)))
        catalogue = cls(nodes)
        catalogue.unknown_dependencies += unknown
        return catalogue

    def __len__(self) -> int:
        return len(self.nodes)

    # evaluation over node positions

    def _match(self, attr: Attr, memo: dict[Attr, frozenset[int]]) -> frozenset[int]:
        key = Attr(attr.key, attr.value.lower())
        if key not in memo:
            values = self._values[attr.key]
            if "*" not in key.value:
                memo[key] = frozenset(values.get(key.value, ()))
            else:
                pattern = _glob(key.value)
                memo[key] = frozenset(
                    i for value, found in values.items() if pattern.fullmatch(value)
                    for i in found)
        return memo[key]

    def _closure(self, seeds: set[int], adjacency: list[tuple[int, ...]]) -> set[int]:
        seen = set(seeds)
        stack = list(seeds)
        while stack:
            for j in adjacency[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        return seen

    def _eval(self, ast: Expr, memo: dict[Attr, frozenset[int]]) -> set[int]:
        if isinstance(ast, Or):
            result: set[int] = set()
            for item in ast.items:
                result |= self._eval(item, memo)
            return result
        if isinstance(ast, And):
            result = self._eval(ast.items[0], memo)
            for item in ast.items[1:]:
                if not result:
                    break
                result &= self._eval(item, memo)
            return result
        if ast.or_inside:
            return set()  # what Coalesce does for `||` inside braces (see the docs)
        sets = sorted((self._match(a, memo) for a in ast.attrs), key=len)
        result = set(sets[0]).intersection(*sets[1:])
        base = set(result)
        if ast.upstream:
            result |= self._closure(base, self._up)
        if ast.downstream:
            result |= self._closure(base, self._down)
        return result


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` is any run of characters (newlines too); every other character is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


# --- the preview ---


@dataclass(frozen=True)
class LocationGroups:
    """Up to `limit` matched nodes, grouped by location in display order, and how many
    matched nodes were left out."""

    groups: tuple[tuple[str, tuple[Node, ...]], ...]
    rest: int


@dataclass(frozen=True)
class Preview:
    """What a run with these selectors would refresh, as far as the catalogue can tell.

    When any term can't be previewed (`unpreviewable` is not empty), `count` is None and
    `node_ids` is empty: the preview never guesses."""

    node_ids: tuple[str, ...]  # in the catalogue's display order
    count: int | None
    unpreviewable: tuple[str, ...]  # the terms, formatted, e.g. '{ subgraph: "My Dims" }'
    include_warnings: tuple[SelectorWarning, ...]
    exclude_warnings: tuple[SelectorWarning, ...]
    everything: bool  # no include selector: Coalesce runs every node (minus excludes)
    catalogue: Catalogue = field(repr=False, compare=False)

    @property
    def known(self) -> bool:
        return self.count is not None

    def by_location(self, limit: int = 50) -> LocationGroups:
        """The first `limit` matched nodes grouped by location. Raises ValueError when the
        count is unknown: there is no node list to show then."""
        if self.count is None:
            raise ValueError("This preview has no node list: "
                             + ", ".join(self.unpreviewable) + " can't be previewed.")
        groups: dict[str, list[Node]] = {}
        for node_id in self.node_ids[:limit]:
            node = self.catalogue.by_id[node_id]
            groups.setdefault(node.location, []).append(node)
        return LocationGroups(
            tuple((loc, tuple(nodes)) for loc, nodes in groups.items()),
            rest=max(0, self.count - limit),
        )


def preview(catalogue: Catalogue, include: str, exclude: str = "") -> Preview:
    """The nodes a run with these include/exclude selectors would refresh: include minus
    exclude, where an empty include means every node (as Coalesce runs everything when
    nothing is selected).

    Raises SelectorError (with `field` set) when either selector doesn't parse. A term
    with a `subgraph` attribute makes the result unknown (count None) instead of guessed,
    because the catalogue doesn't say which nodes are in which subgraph."""
    asts = []
    warns = []
    for name, text in (("include", include), ("exclude", exclude)):
        try:
            ast, found = check(text)
        except SelectorError as e:
            e.field = name
            raise
        asts.append(ast)
        warns.append(tuple(found))
    inc, exc = asts
    blocked = tuple(dict.fromkeys(syntax.format(t) for t in (*_terms(inc), *_terms(exc))
                                  if _has_subgraph(t)))
    common = {"unpreviewable": blocked, "include_warnings": warns[0],
              "exclude_warnings": warns[1], "everything": inc is None,
              "catalogue": catalogue}
    if blocked:
        return Preview(node_ids=(), count=None, **common)
    memo: dict[Attr, frozenset[int]] = {}
    matched = set(range(len(catalogue))) if inc is None else catalogue._eval(inc, memo)
    if exc is not None and matched:
        matched -= catalogue._eval(exc, memo)
    nodes = catalogue.nodes
    ids = tuple(nodes[i].id for i in sorted(matched))
    return Preview(node_ids=ids, count=len(ids), **common)


def _terms(ast: Expr | None) -> Iterable[Term]:
    if ast is None:
        return
    if isinstance(ast, Term):
        yield ast
    else:
        for item in ast.items:
            yield from _terms(item)


def _has_subgraph(term: Term) -> bool:
    return any(a.key == "subgraph" for group in (term.attrs, *term.or_inside) for a in group)


# --- the picker ---


def term_for(node: Node | NodeRecord) -> str:
    """The term that selects `node`: { location: L name: N }, values quoted as needed.
    A * in a name stays a wildcard (selectors have no way to match a literal *)."""
    return f"{{ location: {quote(node.location)} name: {quote(node.name)} }}"


def add_term(selector: str, term: str) -> str:
    """`selector` with `term` joined by ' OR ', or unchanged when an equivalent term
    (same attributes and values ignoring case and order, same + operators) is already one
    of its top-level alternatives. The rest of the selector is kept as written.

    Raises SelectorError when either doesn't parse or `term` isn't a single term."""
    new = parse(term)
    if not isinstance(new, Term):
        raise SelectorError("Expected a single term in braces.", 0, term)
    current = parse(selector)
    if current is None:
        return term.strip()
    alternatives = current.items if isinstance(current, Or) else (current,)
    key = _term_key(new)
    if any(isinstance(alt, Term) and _term_key(alt) == key for alt in alternatives):
        return selector
    return f"{selector.rstrip()} OR {term.strip()}"


def _term_key(term: Term) -> tuple:
    groups = (term.attrs, *term.or_inside)
    return (tuple(frozenset((a.key, a.value.lower()) for a in g) for g in groups),
            term.upstream, term.downstream)

"""Coalesce node selectors: parse, format, and preview them against a cached node catalogue.

Pure Python on purpose: no Django, no models, no HTTP client. Plain dataclasses go in,
plain results come out, so the run form, a management command or a test can all use it.

    ast = parse("{ location: STAGING name: STG_* }+ OR { ORDERS }")
    format(ast)                       # "{ location: STAGING name: STG_* }+ OR { name: ORDERS }"
    warnings("{ A || B }")            # [SelectorWarning("or-inside-braces", ..., pos=4)]
    preview(catalogue, include, exclude).count   # None when a term can't be previewed

The grammar, and why each choice was made, is in docs/selectors.md. In short:

    selector := [ or ]                 (empty: no selector; Coalesce then runs every node)
    or       := and { ("OR" | "||") and }
    and      := item { "AND" item }
    item     := "(" or ")" | ["+"] term ["+"]     ("+" touches the brace; never on a group)
    term     := "{" group { "||" group } "}"      ("||" inside braces: warning, matches nothing)
    group    := value | { attribute ":" value }   (a lone value means name: value)
    value    := word | '"' chars with \\" and \\\\ escapes '"'

Anything this module is unsure Coalesce reads the same way is a SelectorError (with a
0-based position) or a SelectorWarning, never a silent guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

ATTRIBUTES = ("name", "nodeID", "location", "nodeType", "subgraph")
KEYWORDS = ("OR", "AND")

# Node fields each attribute reads; subgraph membership is not in the catalogue.
_NODE_FIELD = {"name": "name", "nodeID": "id", "location": "location", "nodeType": "node_type"}

# Characters that end an unquoted word. "," and a single "|" are listed only so that they
# are reported: Coalesce's CLI notes give "," a meaning (intersection) we don't support.
_SPECIAL = set('{}()":|+,')
# What format() and term_for() leave unquoted: a conservative subset of what parses unquoted.
_SAFE_WORD = re.compile(r"[A-Za-z0-9_$.*\-]+")


# --- errors and warnings ---


class SelectorError(ValueError):
    """A selector this module can't read. `pos` is a 0-based character offset into
    `selector`; `field` is "include" or "exclude" when raised by preview()."""

    def __init__(self, message: str, pos: int, selector: str = "", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.selector = selector
        self.field = field

    def __str__(self) -> str:
        where = f"{self.field} selector, " if self.field else ""
        return f"{self.message} ({where}character {self.pos + 1})"

    def caret(self) -> str:
        """Two lines: the selector's line holding the error, and a ^ under the position."""
        return caret(self.selector, self.pos)


@dataclass(frozen=True)
class SelectorWarning:
    """Something Coalesce accepts but that probably doesn't do what was meant.

    code is "or-inside-braces" (Coalesce silently matches nothing for the whole term) or
    "pipes-between-terms" (`||` between terms: documented for Coalesce's CLI only; OR is
    the documented form)."""

    code: str
    message: str
    pos: int

    def caret(self, selector: str) -> str:
        return caret(selector, self.pos)


def caret(selector: str, pos: int) -> str:
    """The line of `selector` holding `pos`, then a line with ^ under it (tabs kept)."""
    start = selector.rfind("\n", 0, pos) + 1
    end = selector.find("\n", pos)
    line = selector[start : end if end != -1 else len(selector)]
    pad = "".join("\t" if ch == "\t" else " " for ch in line[: pos - start])
    return f"{line}\n{pad}^"


# --- the syntax tree ---


@dataclass(frozen=True)
class Attr:
    """One `key: value` test; key is one of ATTRIBUTES, value may hold * wildcards."""

    key: str
    value: str


@dataclass(frozen=True)
class Term:
    """A braced term. Its attrs must all hold. `upstream` is a leading +, `downstream` a
    trailing +. `or_inside` holds the groups after `||` inside the same braces, which
    Coalesce matches to nothing; it is kept so that format() gives back what was written.
    `pos` (the offset of the term's first character) is not part of equality."""

    attrs: tuple[Attr, ...]
    upstream: bool = False
    downstream: bool = False
    or_inside: tuple[tuple[Attr, ...], ...] = ()
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


Expr: TypeAlias = "Term | Or | And"


# --- tokens ---


@dataclass(frozen=True)
class _Token:
    kind: str  # one of { } ( ) + : || word string end
    text: str
    pos: int
    space_before: bool


def _tokenize(selector: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(selector)
    while True:
        start_ws = i
        while i < n and selector[i].isspace():
            i += 1
        space = i > start_ws or i == 0
        if i >= n:
            tokens.append(_Token("end", "", n, space))
            return tokens
        ch = selector[i]
        if ch == '"':
            text, end = _read_string(selector, i)
            tokens.append(_Token("string", text, i, space))
            i = end
        elif ch == "|":
            if selector.startswith("||", i):
                tokens.append(_Token("||", "||", i, space))
                i += 2
            else:
                raise SelectorError("A single '|' isn't an operator: join terms with OR.",
                                    i, selector)
        elif ch == ",":
            raise SelectorError("',' isn't supported: join terms with AND or OR, and separate "
                                "attributes inside braces with spaces.", i, selector)
        elif ch in _SPECIAL:
            tokens.append(_Token(ch, ch, i, space))
            i += 1
        else:
            start = i
            while i < n and not selector[i].isspace() and selector[i] not in _SPECIAL:
                i += 1
            tokens.append(_Token("word", selector[start:i], start, space))


def _read_string(selector: str, start: int) -> tuple[str, int]:
    """The unescaped text of the quoted value opening at `start`, and the offset after it."""
    out: list[str] = []
    i = start + 1
    while i < len(selector):
        ch = selector[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            nxt = selector[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                raise SelectorError('Inside quotes a backslash must be followed by " or '
                                    "another backslash.", i, selector)
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise SelectorError("This quote is never closed.", start, selector)


# --- the parser ---


def parse(selector: str) -> Expr | None:
    """The syntax tree of `selector`, or None for an empty (or blank) selector.

    Raises SelectorError with a 0-based position for anything it can't read."""
    return _Parser(selector).parse()


def warnings(selector: str) -> list[SelectorWarning]:
    """Problems to show before sending a selector that parses (raises SelectorError if it
    doesn't): `||` inside one pair of braces, and `||` between terms."""
    parser = _Parser(selector)
    parser.parse()
    return list(parser.warnings)


def check(selector: str) -> tuple[Expr | None, list[SelectorWarning]]:
    """parse() and warnings() in one pass."""
    parser = _Parser(selector)
    ast = parser.parse()
    return ast, list(parser.warnings)


class _Parser:
    def __init__(self, selector: str):
        self.selector = selector
        self.tokens: list[_Token] = []
        self.i = 0
        self.warnings: list[SelectorWarning] = []

    # helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def error(self, message: str, pos: int) -> SelectorError:
        return SelectorError(message, pos, self.selector)

    def is_keyword(self, tok: _Token, word: str) -> bool:
        return tok.kind == "word" and tok.text == word

    # grammar

    def parse(self) -> Expr | None:
        self.tokens = _tokenize(self.selector)
        if self.tok.kind == "end":
            return None
        ast = self.parse_or()
        if self.tok.kind != "end":
            raise self.operator_expected(None)
        return ast

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.is_keyword(self.tok, "OR") or self.tok.kind == "||":
            if self.tok.kind == "||":
                self.warnings.append(SelectorWarning(
                    "pipes-between-terms",
                    "Coalesce documents '||' between terms only for its command line tool; "
                    "write OR, the form its scheduler documents.", self.tok.pos))
            self.i += 1
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_item()]
        while self.is_keyword(self.tok, "AND"):
            self.i += 1
            items.append(self.parse_item())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_item(self) -> Expr:
        tok = self.tok
        if tok.kind == "(":
            self.i += 1
            inner = self.parse_or()
            if self.tok.kind != ")":
                raise self.operator_expected(tok)
            self.i += 1
            if self.tok.kind == "+" and not self.tok.space_before:
                raise self.error("'+' applies to one braced term, not to a group in "
                                 "parentheses: put it on each term.", self.tok.pos)
            return inner
        if tok.kind == "+":
            nxt = self.peek()
            if nxt.kind == "(":
                raise self.error("'+' applies to one braced term, not to a group in "
                                 "parentheses: put it on each term.", tok.pos)
            if nxt.kind != "{" or nxt.space_before:
                raise self.error("A leading '+' must touch the '{' of its term, as in "
                                 "+{ name: X }.", tok.pos)
            self.i += 1
            return self.parse_term(upstream=True, start=tok.pos)
        if tok.kind == "{":
            return self.parse_term(upstream=False, start=tok.pos)
        raise self.term_expected()

    def parse_term(self, *, upstream: bool, start: int) -> Term:
        open_tok = self.tok
        self.i += 1
        groups: list[tuple[Attr, ...]] = []
        group: list[tuple[Attr, _Token, bool]] = []  # (attr, its first token, bare?)
        last_pipe = open_tok
        while True:
            tok = self.tok
            if tok.kind in ("}", "||"):
                if not group:
                    if tok.kind == "}" and not groups:
                        raise self.error("Empty braces: write a name, or attribute: value.",
                                         open_tok.pos)
                    pipe = tok if tok.kind == "||" else last_pipe
                    raise self.error("'||' needs a name or attribute on each side.", pipe.pos)
                groups.append(self.finish_group(group))
                group = []
                self.i += 1
                if tok.kind == "}":
                    break
                last_pipe = tok
                self.warnings.append(SelectorWarning(
                    "or-inside-braces",
                    "'||' inside one pair of braces makes Coalesce match no nodes for this "
                    "term. Close the braces and join separate terms with OR: "
                    "{ name: A } OR { name: B }.", tok.pos))
                continue
            if tok.kind == "end":
                raise self.error("This '{' is never closed.", open_tok.pos)
            if tok.kind in ("word", "string"):
                group.append(self.parse_attr())
                continue
            raise self.unexpected_in_braces(tok)
        downstream = False
        if self.tok.kind == "+" and not self.tok.space_before:
            downstream = True
            self.i += 1
        return Term(groups[0], upstream, downstream, tuple(groups[1:]), pos=start)

    def parse_attr(self) -> tuple[Attr, _Token, bool]:
        tok = self.tok
        if self.peek().kind != ":":
            if tok.kind == "word" and tok.text.upper() in KEYWORDS:
                raise self.error(f"'{tok.text}' goes between braced terms, as in "
                                 f"{{ name: A }} {tok.text.upper()} {{ name: B }}; quote it "
                                 "if it is a value.", tok.pos)
            self.i += 1
            return Attr("name", tok.text), tok, True
        if tok.kind == "string":
            raise self.error("Attribute names are not quoted.", tok.pos)
        if tok.text not in ATTRIBUTES:
            raise self.error(_unknown_attribute(tok.text), tok.pos)
        self.i += 2
        value = self.tok
        if value.kind == "word" and value.text.upper() in KEYWORDS:
            raise self.error(f"'{value.text}' can't be a value unquoted: write "
                             f'{tok.text}: "{value.text}" for a node called {value.text}, '
                             "or close the braces before combining terms.", value.pos)
        if value.kind not in ("word", "string"):
            raise self.error(f"Expected a value after '{tok.text}:'.", value.pos)
        self.i += 1
        return Attr(tok.text, value.text), tok, False

    def finish_group(self, group: list[tuple[Attr, _Token, bool]]) -> tuple[Attr, ...]:
        if len(group) > 1:
            for _, tok, bare in group:
                if bare:
                    raise self.error(
                        "A value without an attribute must be alone in its braces ({ X } "
                        "means { name: X }). Write attribute: value for each, and quote "
                        'values with spaces: { name: "MY NODE" }.', tok.pos)
        return tuple(attr for attr, _, _ in group)

    # error messages that depend on what was found

    def operator_expected(self, open_paren: _Token | None) -> SelectorError:
        """The current token follows a complete item where only OR, AND, ')' or the end
        may come."""
        tok = self.tok
        if tok.kind == "end":
            return self.error("This '(' is never closed.", open_paren.pos)  # type: ignore[union-attr]
        if tok.kind in ("{", "(") or (tok.kind == "+" and self.peek().kind == "{"
                                     and not self.peek().space_before):
            return self.error("Two terms need OR or AND between them (a space alone is "
                              "ambiguous in Coalesce's documentation).", tok.pos)
        if tok.kind == "+":
            return self.error("A trailing '+' must touch the '}' of its term, as in "
                              "{ name: X }+.", tok.pos)
        if tok.kind == ")":
            return self.error("This ')' has no matching '('.", tok.pos)
        if tok.kind == "word" and tok.text.upper() in KEYWORDS:
            return self.error(f"Write {tok.text.upper()} in capitals: Coalesce documents "
                              "only the capital form.", tok.pos)
        if tok.kind == "}":
            return self.error("This '}' has no matching '{'.", tok.pos)
        return self.error(f"Expected OR or AND here, found {_describe(tok)}.", tok.pos)

    def term_expected(self) -> SelectorError:
        tok = self.tok
        if tok.kind == "end":
            return self.error("Expected a term in braces, found the end of the selector.",
                              tok.pos)
        if tok.kind == "word" and tok.text.upper() in KEYWORDS:
            return self.error(f"Expected a term in braces before {tok.text}.", tok.pos)
        if tok.kind == "||":
            return self.error("Expected a term in braces before '||'.", tok.pos)
        if tok.kind in ("word", "string"):
            return self.error(f"Terms go in braces: {{ {tok.text} }}, or "
                              f"{{ name: {tok.text} }}.", tok.pos)
        if tok.kind == ")":
            return self.error("Expected a term in braces before ')'.", tok.pos)
        if tok.kind == "}":
            return self.error("This '}' has no matching '{'.", tok.pos)
        return self.error(f"Expected a term in braces, found {_describe(tok)}.", tok.pos)

    def unexpected_in_braces(self, tok: _Token) -> SelectorError:
        if tok.kind == "{":
            return self.error("Braces can't be nested; close this term first.", tok.pos)
        if tok.kind == ":":
            return self.error("':' needs an attribute name before it.", tok.pos)
        return self.error(f"{_describe(tok)} can't appear unquoted inside braces; quote "
                          'the value: { name: "A+B" }.', tok.pos)


def _describe(tok: _Token) -> str:
    return "the end of the selector" if tok.kind == "end" else f"'{tok.text}'"


def _unknown_attribute(key: str) -> str:
    known = ", ".join(ATTRIBUTES)
    for attr in ATTRIBUTES:
        if attr.lower() == key.lower():
            return (f"Unknown attribute '{key}': attribute names are written exactly as "
                    f"{attr}.")
    return f"Unknown attribute '{key}': use one of {known}."


# --- the formatter ---


def format(ast: Expr | None) -> str:  # shadows the builtin here only; call selectors.format
    """A canonical selector for `ast` that parse() reads back to an equal tree: attributes
    always named, values quoted only when needed, OR/AND in capitals, single spaces,
    parentheses only where precedence or nesting needs them."""
    if ast is None:
        return ""
    if isinstance(ast, Term):
        groups = " || ".join(_format_group(g) for g in (ast.attrs, *ast.or_inside))
        return f"{'+' if ast.upstream else ''}{{ {groups} }}{'+' if ast.downstream else ''}"
    if isinstance(ast, Or):
        return " OR ".join(_wrap(item, isinstance(item, Or)) for item in ast.items)
    return " AND ".join(_wrap(item, isinstance(item, Or | And)) for item in ast.items)


def _wrap(item: Expr, parens: bool) -> str:
    return f"({format(item)})" if parens else format(item)


def _format_group(attrs: tuple[Attr, ...]) -> str:
    return " ".join(f"{a.key}: {quote(a.value)}" for a in attrs)


def quote(value: str) -> str:
    """`value` as it must be written in a selector: bare when that is unambiguous, else
    double-quoted with \\ and \" escaped. A * stays a wildcard either way."""
    if _SAFE_WORD.fullmatch(value) and value.upper() not in KEYWORDS:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    blocked = tuple(dict.fromkeys(format(t) for t in (*_terms(inc), *_terms(exc))
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

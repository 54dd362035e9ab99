"""Selector syntax: the tokens, the parser, the tree and the formatter (see runs.selectors)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "ATTRIBUTES", "KEYWORDS", "And", "Attr", "Expr", "Or", "SelectorError", "SelectorWarning",
    "Term", "caret", "check", "format", "parse", "quote", "warnings",
]

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

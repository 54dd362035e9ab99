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

from runs.selectors.preview import (
    Catalogue,
    LocationGroups,
    Node,
    NodeRecord,
    Preview,
    add_term,
    preview,
    term_for,
)
from runs.selectors.syntax import (
    ATTRIBUTES,
    KEYWORDS,
    And,
    Attr,
    Expr,
    Or,
    SelectorError,
    SelectorWarning,
    Term,
    caret,
    check,
    format,
    parse,
    quote,
    warnings,
)

__all__ = [
    "ATTRIBUTES", "KEYWORDS", "And", "Attr", "Catalogue", "Expr", "LocationGroups", "Node",
    "NodeRecord", "Or", "Preview", "SelectorError", "SelectorWarning", "Term", "add_term",
    "caret", "check", "format", "parse", "preview", "quote", "term_for", "warnings",
]

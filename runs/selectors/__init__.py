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

# The public names, re-exported from the two halves (each lists its own in __all__).
from runs.selectors.preview import *  # noqa: F403
from runs.selectors.preview import __all__ as _preview_names
from runs.selectors.syntax import *  # noqa: F403
from runs.selectors.syntax import __all__ as _syntax_names

__all__ = [*_syntax_names, *_preview_names]

"""runs.selectors: the parser, its errors and warnings, the formatter, the catalogue, the
preview and the picker helpers; then two properties (format -> parse round trip, and the
preview against a brute-force reference written here independently)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runs import selectors
from runs.selectors import (
    And,
    Attr,
    Catalogue,
    Node,
    NodeRecord,
    Or,
    SelectorError,
    Term,
    add_term,
    parse,
    preview,
    term_for,
)


def name(value: str, **flags) -> Term:
    return Term((Attr("name", value),), **flags)


def error_of(selector: str) -> SelectorError:
    with pytest.raises(SelectorError) as info:
        parse(selector)
    return info.value


# A small lineage: RAW.ORDERS -> STAGING.STG_ORDERS -> MART.FCT_ORDERS -> MART.RPT_SALES
#                  RAW.CUSTOMERS -> STAGING.STG_CUSTOMERS -> MART.DIM_CUSTOMERS -^
@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.from_records([
        NodeRecord("1", "ORDERS", "RAW", "Source"),
        NodeRecord("2", "CUSTOMERS", "RAW", "Source"),
        NodeRecord("3", "STG_ORDERS", "STAGING", "Stage", (("RAW", "ORDERS"),)),
        NodeRecord("4", "STG_CUSTOMERS", "STAGING", "Stage", (("RAW", "CUSTOMERS"),)),
        NodeRecord("5", "FCT_ORDERS", "MART", "Fact",
                   (("STAGING", "STG_ORDERS"), ("STAGING", "STG_CUSTOMERS"))),
        NodeRecord("6", "DIM_CUSTOMERS", "MART", "Dimension", (("STAGING", "STG_CUSTOMERS"),)),
        NodeRecord("7", "RPT_SALES", "MART", "View",
                   (("MART", "FCT_ORDERS"), ("MART", "DIM_CUSTOMERS"), ("LEGACY", "GONE"))),
        NodeRecord("8", "My Node", "Sand Box", "View"),
    ])


def ids(catalogue: Catalogue, include: str, exclude: str = "") -> set[str]:
    return set(preview(catalogue, include, exclude).node_ids)


# --- the parser ---


def test_it_parses_a_term_with_several_attributes():
    assert parse("{ location: STAGING name: STG_ORDERS }") == Term(
        (Attr("location", "STAGING"), Attr("name", "STG_ORDERS")))


def test_it_reads_every_attribute():
    ast = parse("{nodeID:98 nodeType:\"Dimension\" subgraph:\"My Dimensions\"}")
    assert ast == Term((Attr("nodeID", "98"), Attr("nodeType", "Dimension"),
                        Attr("subgraph", "My Dimensions")))


def test_it_reads_a_bare_value_as_a_name():
    assert parse("{ STG_ORDERS }") == parse("{ name: STG_ORDERS }")


def test_it_reads_quoted_values_with_spaces_and_escapes():
    assert parse(r'{ name: "MY NODE" }') == name("MY NODE")
    assert parse(r'{ name: "say \"hi\" \\ there" }') == name('say "hi" \\ there')
    assert parse('{ "A B" }') == name("A B")


def test_it_returns_none_for_an_empty_selector():
    assert parse("") is None
    assert parse("  \n\t ") is None


def test_it_gives_or_and_pipes_the_same_meaning():
    assert parse("{A} OR {B}") == parse("{A} || {B}") == Or((name("A"), name("B")))


def test_it_binds_and_tighter_than_or():
    assert parse("{A} OR {B} AND {C}") == Or((name("A"), And((name("B"), name("C")))))
    assert parse("{A} AND {B} OR {C}") == Or((And((name("A"), name("B"))), name("C")))


def test_it_groups_with_parentheses():
    assert parse("({A} OR {B}) AND {C}") == And((Or((name("A"), name("B"))), name("C")))


def test_it_reads_lineage_operators():
    assert parse("+{A}") == name("A", upstream=True)
    assert parse("{A}+") == name("A", downstream=True)
    assert parse("+{A}+") == name("A", upstream=True, downstream=True)


def test_it_keeps_or_inside_braces_in_the_tree():
    assert parse("{ A || location: L name: B }") == Term(
        (Attr("name", "A"),), or_inside=((Attr("location", "L"), Attr("name", "B")),))


def test_it_records_term_positions_outside_equality():
    ast = parse("{A} OR  +{B}")
    assert [t.pos for t in ast.items] == [0, 8]
    assert ast == Or((name("A"), name("B", upstream=True)))


@pytest.mark.parametrize(("selector", "pos", "words"), [
    ("{A} {B}", 4, "OR or AND between them"),                # juxtaposition
    ("{A} +{B}", 4, "OR or AND between them"),
    ("({A}) ({B})", 6, "OR or AND between them"),
    ("{A} or {B}", 4, "capitals"),
    ("{A} and {B}", 4, "capitals"),
    ("{ nodeid: 98 }", 2, "exactly as nodeID"),               # unknown attributes
    ("{ name: A colour: red }", 10, "use one of name, nodeID"),
    ('{ "name": A }', 2, "not quoted"),
    ("+({A} OR {B})", 0, "not to a group"),
    ("({A} OR {B})+", 12, "not to a group"),
    ("+ {A}", 0, "must touch the '{'"),
    ("{A} +", 4, "must touch the '}'"),
    ("++{A}", 0, "must touch the '{'"),
    ("{A", 0, "never closed"),
    ("{ name: A OR {B}", 10, "goes between braced terms"),
    ('{ name: "A }', 8, "quote is never closed"),
    (r'{ name: "A\n" }', 10, "backslash"),
    ("({A} OR {B}", 0, "'(' is never closed"),
    ("{A})", 3, "no matching '('"),
    ("{A} }", 4, "no matching '{'"),
    ("}", 0, "no matching '{'"),
    ("{}", 0, "Empty braces"),
    ("{ || A }", 2, "each side"),
    ("{ A || }", 4, "each side"),
    ("{ A B }", 2, "must be alone"),
    ("{ location: L A }", 14, "must be alone"),
    ("{ name: }", 8, "value after 'name:'"),
    ("{ name: OR }", 8, "can't be a value unquoted"),
    ("{ : A }", 2, "attribute name before it"),
    ("{ {A} }", 2, "can't be nested"),
    ("{ name: A+B }", 9, "quote the value"),
    ("{ name: f(x) }", 9, "quote the value"),
    ("{A} | {B}", 4, "single '|'"),
    ("{A}, {B}", 3, "','"),
    ("STG_ORDERS", 0, "Terms go in braces"),
    ("{A} OR", 6, "found the end"),
    ("OR {A}", 0, "before OR"),
    ("|| {A}", 0, "before '||'"),
    ("{A} OR ()", 8, "before ')'"),
    ("{A} STG", 4, "Expected OR or AND here, found 'STG'"),
])
def test_it_reports_syntax_errors_with_positions(selector, pos, words):
    error = error_of(selector)
    assert error.pos == pos
    assert words in error.message
    assert error.selector == selector


def test_it_renders_a_caret_under_the_error():
    error = error_of("{ location: STAGING colour: red }")
    assert error.caret() == ("{ location: STAGING colour: red }\n"
                             "                    ^")
    assert "character 21" in str(error)  # 1-based for people, pos is 0-based


def test_it_renders_the_caret_on_the_line_of_the_error():
    error = error_of("{A} OR\n\t{B} {C}")
    assert error.pos == 12
    assert error.caret() == "\t{B} {C}\n\t    ^"


# --- warnings ---


def test_it_warns_about_or_inside_braces_with_its_position():
    [warning] = selectors.warnings("{ location: L name: A || name: B }")
    assert warning.code == "or-inside-braces"
    assert warning.pos == 22
    assert "match no nodes" in warning.message
    assert warning.caret("{ location: L name: A || name: B }").endswith(" " * 22 + "^")


def test_it_warns_about_each_or_inside_braces():
    found = selectors.warnings("{ A || B || C } OR { D || E }")
    assert [(w.code, w.pos) for w in found] == [("or-inside-braces", 4),
                                                ("or-inside-braces", 9),
                                                ("or-inside-braces", 23)]


def test_it_warns_mildly_about_pipes_between_terms():
    [warning] = selectors.warnings("{A} || {B}")
    assert (warning.code, warning.pos) == ("pipes-between-terms", 4)


def test_it_has_no_warning_for_pipes_inside_quotes():
    assert selectors.warnings('{ name: "A || B" } OR { B }') == []


def test_it_raises_the_syntax_error_before_any_warning():
    with pytest.raises(SelectorError):
        selectors.warnings("{ A || B } {C}")


# --- the formatter ---


@pytest.mark.parametrize(("selector", "canonical"), [
    ("{STG_ORDERS}", "{ name: STG_ORDERS }"),
    ("{location:STAGING   name:STG_*}", "{ location: STAGING name: STG_* }"),
    ('{ name: "MY NODE" }', '{ name: "MY NODE" }'),
    ('{ name: "PLAIN" }', "{ name: PLAIN }"),
    (r'{ name: "a\"b\\c" }', r'{ name: "a\"b\\c" }'),
    ('{ name: "or" }', '{ name: "or" }'),
    ('{ name: "" }', '{ name: "" }'),
    ("{A} || {B}", "{ name: A } OR { name: B }"),
    ("({A} AND {B}) OR {C}", "{ name: A } AND { name: B } OR { name: C }"),
    ("{A} AND ({B} OR {C})", "{ name: A } AND ({ name: B } OR { name: C })"),
    ("{A} OR ({B} OR {C})", "{ name: A } OR ({ name: B } OR { name: C })"),
    ("+{A}+", "+{ name: A }+"),
    ("{ A||B }", "{ name: A || name: B }"),
])
def test_it_formats_canonically(selector, canonical):
    assert selectors.format(parse(selector)) == canonical
    assert parse(canonical) == parse(selector)


def test_it_formats_none_as_empty():
    assert selectors.format(None) == ""


# --- the catalogue ---


def test_it_resolves_dependencies_by_location_and_name(catalogue):
    assert catalogue.by_id["5"].upstream == ("3", "4")
    assert catalogue.by_id["7"].upstream == ("5", "6")


def test_it_ignores_and_counts_unknown_dependencies(catalogue):
    assert catalogue.unknown_dependencies == 1  # LEGACY.GONE


def test_it_counts_unknown_upstream_ids_and_self_references():
    nodes = [Node("1", "A", "L", "T", ("1", "9")), Node("2", "B", "L", "T", ("1", "1"))]
    catalogue = Catalogue(nodes)
    assert catalogue.unknown_dependencies == 2
    assert set(preview(catalogue, "+{B}").node_ids) == {"1", "2"}


def test_it_refuses_duplicate_ids():
    with pytest.raises(ValueError, match="id '1'"):
        Catalogue([Node("1", "A", "L", "T"), Node("1", "B", "L", "T")])


def test_it_matches_dependencies_exactly():
    catalogue = Catalogue.from_records([
        NodeRecord("1", "A", "RAW", "T"),
        NodeRecord("2", "B", "RAW", "T", (("raw", "a"),)),
    ])
    assert catalogue.by_id["2"].upstream == ()
    assert catalogue.unknown_dependencies == 1


# --- the preview ---


def test_it_matches_every_attribute_of_a_term(catalogue):
    assert ids(catalogue, "{ location: STAGING name: STG_ORDERS }") == {"3"}
    assert ids(catalogue, "{ location: MART name: STG_ORDERS }") == set()
    assert ids(catalogue, "{ nodeID: 6 }") == {"6"}
    assert ids(catalogue, "{ nodeType: Stage }") == {"3", "4"}


def test_it_matches_case_insensitively(catalogue):
    assert ids(catalogue, "{ location: staging name: stg_orders }") == {"3"}
    assert ids(catalogue, '{ name: "my node" location: "SAND BOX" }') == {"8"}


def test_it_matches_wildcards(catalogue):
    assert ids(catalogue, "{ name: STG_* }") == {"3", "4"}
    assert ids(catalogue, "{ name: *CUSTOMERS }") == {"2", "4", "6"}
    assert ids(catalogue, "{ name: *_ORD* }") == {"3", "5"}
    assert ids(catalogue, "{ * }") == set("12345678")


def test_it_treats_other_glob_characters_literally():
    catalogue = Catalogue([Node("1", "A?", "L", "T"), Node("2", "AB", "L", "T"),
                           Node("3", "[A]", "L", "T")])
    assert ids(catalogue, '{ name: "A?" }') == {"1"}
    assert ids(catalogue, '{ name: "[A]" }') == {"3"}


def test_it_combines_terms(catalogue):
    assert ids(catalogue, "{ RAW* } OR { nodeID: 1 } || { nodeID: 2 }") == {"1", "2"}
    assert ids(catalogue, "{ location: MART } AND { name: *CUSTOMERS }") == {"6"}
    assert ids(catalogue, "{ STG_* } AND ({ *ORDERS } OR { nodeID: 4 })") == {"3", "4"}


def test_it_adds_upstream_and_downstream_transitively(catalogue):
    assert ids(catalogue, "+{ RPT_SALES }") == set("1234567")
    assert ids(catalogue, "{ CUSTOMERS }+") == {"2", "4", "5", "6", "7"}
    assert ids(catalogue, "+{ FCT_ORDERS }+") == {"1", "2", "3", "4", "5", "7"}


def test_it_applies_lineage_before_and(catalogue):
    assert ids(catalogue, "{ ORDERS }+ AND { location: MART }") == {"5", "7"}


def test_it_runs_everything_for_an_empty_include(catalogue):
    result = preview(catalogue, "", "")
    assert result.everything
    assert result.count == 8


def test_it_subtracts_the_exclude(catalogue):
    assert ids(catalogue, "", "{ location: RAW }+") == {"8"}
    assert ids(catalogue, "{ location: MART }", "{ nodeType: View }") == {"5", "6"}


def test_it_matches_nothing_for_or_inside_braces(catalogue):
    result = preview(catalogue, "{ STG_ORDERS || STG_CUSTOMERS }")
    assert result.count == 0
    assert [w.code for w in result.include_warnings] == ["or-inside-braces"]


def test_it_excludes_nothing_for_or_inside_braces(catalogue):
    result = preview(catalogue, "{ location: RAW }", "{ ORDERS || CUSTOMERS }")
    assert result.count == 2
    assert [w.code for w in result.exclude_warnings] == ["or-inside-braces"]


def test_it_never_guesses_subgraph_terms(catalogue):
    result = preview(catalogue, '{ subgraph: "My Dimensions" } OR { location: RAW }')
    assert result.count is None
    assert not result.known
    assert result.node_ids == ()
    assert result.unpreviewable == ('{ subgraph: "My Dimensions" }',)
    with pytest.raises(ValueError, match="can't be previewed"):
        result.by_location()


def test_it_never_guesses_subgraph_terms_in_the_exclude(catalogue):
    result = preview(catalogue, "{ * }", "{ location: MART subgraph: Finance }+")
    assert result.count is None
    assert result.unpreviewable == ("{ location: MART subgraph: Finance }+",)


def test_it_never_guesses_subgraph_terms_behind_and_or_or_inside(catalogue):
    for selector in ("{ nodeID: 999 } AND { subgraph: X }", "{ A || subgraph: X }"):
        assert preview(catalogue, selector).count is None


def test_it_names_the_selector_of_a_syntax_error(catalogue):
    with pytest.raises(SelectorError) as info:
        preview(catalogue, "{A}", "{B")
    assert info.value.field == "exclude"
    assert "exclude selector" in str(info.value)


def test_it_lists_nodes_in_display_order(catalogue):
    assert preview(catalogue, "{ * }").node_ids == ("6", "5", "7", "2", "1", "8", "4", "3")


def test_it_groups_the_first_nodes_by_location(catalogue):
    groups = preview(catalogue, "{ * }").by_location(limit=4)
    assert [(loc, [n.id for n in nodes]) for loc, nodes in groups.groups] == [
        ("MART", ["6", "5", "7"]), ("RAW", ["2"])]
    assert groups.rest == 4


def test_it_groups_up_to_fifty_by_default():
    catalogue = Catalogue(Node(str(i), f"N{i:03d}", f"L{i % 3}", "T") for i in range(120))
    groups = preview(catalogue, "").by_location()
    assert sum(len(nodes) for _, nodes in groups.groups) == 50
    assert groups.rest == 70
    assert [(loc, len(nodes)) for loc, nodes in groups.groups] == [("L0", 40), ("L1", 10)]
    groups = preview(catalogue, "{ location: L2 }").by_location()
    assert (len(groups.groups[0][1]), groups.rest) == (40, 0)


# --- the picker ---


def test_it_builds_a_term_for_a_node():
    assert term_for(Node("1", "STG_ORDERS", "STAGING", "Stage")) == (
        "{ location: STAGING name: STG_ORDERS }")


@pytest.mark.parametrize(("location", "node_name", "term"), [
    ("Sand Box", "My Node", '{ location: "Sand Box" name: "My Node" }'),
    ("RAW", 'say "hi"', r'{ location: RAW name: "say \"hi\"" }'),
    ("RAW", "a\\b", r'{ location: RAW name: "a\\b" }'),
    ("RAW", "A+B", '{ location: RAW name: "A+B" }'),
    ("RAW", "x:y", '{ location: RAW name: "x:y" }'),
    ("RAW", "f(x)", '{ location: RAW name: "f(x)" }'),
    ("RAW", "a,b", '{ location: RAW name: "a,b" }'),
    ("RAW", "OR", '{ location: RAW name: "OR" }'),
    ("RAW", "and", '{ location: RAW name: "and" }'),
    ("RAW", "", '{ location: RAW name: "" }'),
    ("RAW", "Ünïcode", '{ location: RAW name: "Ünïcode" }'),
])
def test_it_quotes_picker_values_when_needed(location, node_name, term):
    node = Node("1", node_name, location, "T")
    assert term_for(node) == term
    assert ids(Catalogue([node, Node("2", "other", "RAW", "T")]), term) == {"1"}


def test_it_adds_a_term_with_or():
    assert add_term("", "{ location: RAW name: A }") == "{ location: RAW name: A }"
    assert add_term("{ location: RAW name: A }\n", "{ location: RAW name: B }") == (
        "{ location: RAW name: A } OR { location: RAW name: B }")


def test_it_keeps_the_rest_of_the_selector_as_written():
    assert add_term("{A}   AND {B}", "{C}") == "{A}   AND {B} OR {C}"


def test_it_does_not_add_a_term_twice():
    selector = "{ location: raw name: a } OR {B}"
    assert add_term(selector, "{ name: A location: RAW }") == selector
    assert add_term("{B}", "{ B }") == "{B}"


def test_it_adds_a_term_that_differs_in_lineage():
    assert add_term("{A}", "{A}+") == "{A} OR {A}+"


def test_it_refuses_to_add_to_a_broken_selector():
    with pytest.raises(SelectorError):
        add_term("{A", "{B}")
    with pytest.raises(SelectorError, match="single term"):
        add_term("{A}", "{B} OR {C}")


def test_it_imports_no_django():
    code = ("import sys, runs.selectors; "
            "sys.exit(any(m.split('.')[0] in ('django', 'requests') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- properties ---

KEYS = st.sampled_from(selectors.ATTRIBUTES)
VALUES = st.text(alphabet='aAbB _*?[]"\\:{}()|+,é', max_size=4)


ANY_ATTR = st.builds(Attr, KEYS, VALUES)


def exprs(attrs=ANY_ATTR):
    group = st.lists(attrs, min_size=1, max_size=3).map(tuple)
    terms = st.builds(Term, group, st.booleans(), st.booleans(),
                      st.lists(group, max_size=2).map(tuple))
    return st.recursive(terms, lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
    ), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(exprs())
def test_property_format_round_trips_through_parse(ast):
    text = selectors.format(ast)
    assert parse(text) == ast
    assert selectors.format(parse(text)) == text


# The reference: direct recursion over the tree, closures by scanning until nothing
# changes, fnmatch on lowercased text with only * left special.

FIELDS = {"name": "name", "nodeID": "id", "location": "location", "nodeType": "node_type"}


def ref_match(pattern: str, value: str) -> bool:
    literal = "".join(f"[{c}]" if c in "?[" else c for c in pattern.lower())
    return fnmatch.fnmatchcase(value.lower(), literal)


def ref_upstream(found: set[str], nodes: list[Node]) -> set[str]:
    known = {n.id for n in nodes}
    found = set(found)
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.id in found:
                for up in n.upstream:
                    if up in known and up not in found:
                        found.add(up)
                        changed = True
    return found


def ref_downstream(found: set[str], nodes: list[Node]) -> set[str]:
    found = set(found)
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.id not in found and any(up in found for up in n.upstream):
                found.add(n.id)
                changed = True
    return found


def ref_eval(ast, nodes: list[Node]) -> set[str]:
    if isinstance(ast, Or):
        return set().union(*(ref_eval(item, nodes) for item in ast.items))
    if isinstance(ast, And):
        return set.intersection(*(ref_eval(item, nodes) for item in ast.items))
    if ast.or_inside:
        return set()
    base = {n.id for n in nodes
            if all(ref_match(a.value, getattr(n, FIELDS[a.key])) for a in ast.attrs)}
    result = set(base)
    if ast.upstream:
        result |= ref_upstream(base, nodes)
    if ast.downstream:
        result |= ref_downstream(base, nodes)
    return result


NAMES = st.text(alphabet="aAbB ?[", min_size=1, max_size=3)
LOCATIONS = st.sampled_from(["STAGING", "staging", "Raw Data", "raw data", "BI"])
TYPES = st.sampled_from(["Stage", "stage", "Dimension", "Fact"])


@st.composite
def dags(draw) -> list[Node]:
    nodes = []
    for i in range(draw(st.integers(0, 12))):
        earlier = st.sampled_from([str(j + 1) for j in range(i)] + ["404"])
        upstream = draw(st.lists(earlier, max_size=3, unique=True)) if i else []
        nodes.append(Node(str(i + 1), draw(NAMES), draw(LOCATIONS), draw(TYPES),
                          tuple(upstream)))
    return nodes


# A leaf's value starts as a recipe, realised once the nodes are known: mostly a node's own
# value with its case changed and a part swapped for *, so that terms do match; sometimes
# arbitrary text. (Recipes keep the tree strategy fixed, which keeps generation fast.)
RECIPES = st.tuples(
    st.integers(0, 3),                                    # 0: arbitrary text
    st.integers(0, 11),                                   # which node
    st.integers(0, 7),                                    # which characters change case
    st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(0, 3))),  # part to *
    st.text(alphabet="aAbB ?[*", max_size=3),
)
RECIPE_EXPRS = exprs(st.builds(Attr, st.sampled_from(list(FIELDS)), RECIPES))


def realise(ast, nodes: list[Node]):
    if isinstance(ast, Or | And):
        return type(ast)(tuple(realise(item, nodes) for item in ast.items))
    groups = tuple(tuple(Attr(a.key, pattern(a.key, a.value, nodes)) for a in group)
                   for group in (ast.attrs, *ast.or_inside))
    return Term(groups[0], ast.upstream, ast.downstream, groups[1:])


def pattern(key: str, recipe: tuple, nodes: list[Node]) -> str:
    kind, which, flips, cut, text = recipe
    if kind == 0 or not nodes:
        return text
    value = getattr(nodes[which % len(nodes)], FIELDS[key])
    value = "".join(c.swapcase() if flips >> i & 1 else c for i, c in enumerate(value))
    if cut is not None:
        start = min(cut[0], len(value))
        value = value[:start] + "*" + value[max(start, min(cut[1], len(value))):]
    return value


@settings(max_examples=200, deadline=None)
@given(dags(), RECIPE_EXPRS, st.one_of(st.none(), RECIPE_EXPRS))
def test_property_preview_agrees_with_a_brute_force_reference(nodes, include, exclude):
    include = realise(include, nodes)
    exclude = None if exclude is None else realise(exclude, nodes)
    result = preview(Catalogue(nodes), selectors.format(include), selectors.format(exclude))
    expected = ref_eval(include, nodes)
    if exclude is not None:
        expected -= ref_eval(exclude, nodes)
    assert set(result.node_ids) == expected
    assert result.count == len(expected)


@settings(max_examples=50, deadline=None)
@given(dags())
def test_property_an_empty_include_is_every_node(nodes):
    assert preview(Catalogue(nodes), "").count == len(nodes)

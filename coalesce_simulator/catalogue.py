"""The simulated environment's nodes and jobs, and which nodes a selector picks.

Every environment gets the same shape of DAG, built deterministically from its size:
SOURCES (RAW_*), STAGING (STG_*) reading one or two sources, MART dimensions and facts
reading several staging nodes (fan-in), and REPORTING views over the marts, with popular
staging nodes read by many marts (fan-out). A run with nothing selected reports all of
it; the five nodes of a bulk-created run (STG_ORDERS ... FCT_REVENUE) are part of it, with
the same node IDs.

The selector evaluator here is written independently of the dashboard's (the simulator
imports nothing from it), so the two cross-check each other in the end-to-end tests: the
nodes a simulated run reports are the nodes this evaluator picks.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_NODE_COUNT = 300
MAX_NODE_COUNT = 10_000
NODE_ID_NAMESPACE = uuid.UUID("5b0c1f2e-3d4a-4b6c-8e9f-0a1b2c3d4e5f")  # as run.py
# The seven nodes every catalogue starts with, with their upstream (location, name) pairs.
CORE = (
    ("RAW_ORDERS", "SOURCES", "Source", ()),
    ("RAW_CUSTOMERS", "SOURCES", "Source", ()),
    ("STG_ORDERS", "STAGING", "Stage", (("SOURCES", "RAW_ORDERS"),)),
    ("STG_CUSTOMERS", "STAGING", "Stage", (("SOURCES", "RAW_CUSTOMERS"),)),
    ("DIM_CUSTOMER", "MART", "Dimension", (("STAGING", "STG_CUSTOMERS"),)),
    ("FCT_ORDERS", "MART", "Fact", (("STAGING", "STG_ORDERS"), ("MART", "DIM_CUSTOMER"))),
    ("FCT_REVENUE", "MART", "Fact", (("MART", "FCT_ORDERS"),)),
)
# Jobs by ID: (name, include selector, exclude selector).
JOBS = {
    "101": ("Daily marts", "{ location: MART nodeType: Fact }", ""),
    "102": ("Orders and everything upstream", "+{ location: MART name: FCT_ORDERS }", ""),
    "103": ("Staging, minus orders", "{ location: STAGING }", "{ name: STG_ORDERS }"),
}


@dataclass(frozen=True)
class SimNode:
    id: str
    name: str
    location: str
    node_type: str
    depends_on: tuple[tuple[str, str], ...]

    def summary(self) -> dict:
        return {"id": self.id, "name": self.name, "locationName": self.location,
                "nodeType": self.node_type, "database": "ANALYTICS", "schema": self.location}

    def detail(self) -> dict:
        mapping = [{"name": self.name, "dependencies": [
            {"locationName": loc, "nodeName": name} for loc, name in self.depends_on]}]
        return {**self.summary(), "description": f"Simulated {self.node_type} node.",
                "metadata": {"columns": [], "sourceMapping": mapping}}


def node_id(environment_id: str, name: str) -> str:
    return str(uuid.uuid5(NODE_ID_NAMESPACE, f"{environment_id}/{name}"))


@lru_cache(maxsize=32)
def nodes_for(environment_id: str, count: int = DEFAULT_NODE_COUNT) -> tuple[SimNode, ...]:
    """`count` nodes (at least the core seven) in dependency order, ids per environment."""
    rng = random.Random(count)
    specs = list(CORE)
    rest = max(0, count - len(CORE))
    # A quarter sources, a third staging, a quarter marts, the rest reporting views.
    sizes = {"SOURCES": rest // 4, "STAGING": rest // 3, "MART": rest // 4}
    sizes["REPORTING"] = rest - sum(sizes.values())
    made: dict[str, list[tuple[str, str]]] = {loc: [] for loc in sizes}
    for name, loc, _, _ in CORE:
        made[loc].append((loc, name))
    for i in range(sizes["SOURCES"]):
        specs.append((f"RAW_TABLE_{i:05d}", "SOURCES", "Source", ()))
        made["SOURCES"].append(("SOURCES", f"RAW_TABLE_{i:05d}"))
    for i in range(sizes["STAGING"]):
        ups = tuple(rng.sample(made["SOURCES"], min(len(made["SOURCES"]), rng.randint(1, 2))))
        specs.append((f"STG_TABLE_{i:05d}", "STAGING", "Stage", ups))
        made["STAGING"].append(("STAGING", f"STG_TABLE_{i:05d}"))
    popular = made["STAGING"][:10]  # fan-out: many marts read these
    for i in range(sizes["MART"]):
        kind, prefix = ("Dimension", "DIM") if i % 3 else ("Fact", "FCT")
        ups = set(rng.sample(made["STAGING"], min(len(made["STAGING"]), rng.randint(1, 4))))
        ups.add(rng.choice(popular))
        if kind == "Fact" and len(made["MART"]) > 3:
            ups.add(rng.choice(made["MART"][-50:]))  # facts read earlier dimensions
        name = f"{prefix}_TABLE_{i:05d}"
        specs.append((name, "MART", kind, tuple(sorted(ups))))
        made["MART"].append(("MART", name))
    for i in range(sizes["REPORTING"]):
        ups = tuple(sorted(rng.sample(made["MART"], min(len(made["MART"]), rng.randint(2, 5)))))
        specs.append((f"RPT_VIEW_{i:05d}", "REPORTING", "View", ups))
    return tuple(SimNode(node_id(environment_id, name), name, loc, kind, tuple(ups))
                 for name, loc, kind, ups in specs)


# --- selectors: a small evaluator of its own ------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(\|\||[{}()+:])|"((?:[^"\\]|\\.)*)"|([^\s{}()":|+,]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    """[(kind, text)]: kind is the punctuation itself, "word", "quoted" or "space"."""
    out, pos = [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unexpected {text[pos]!r} at {pos}")
        punct, quoted, word = match.groups()
        if punct:
            out.append((punct, punct))
        elif quoted is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", quoted)))
        elif word in ("OR", "AND"):
            out.append((word, word))
        else:
            out.append(("value", word))
        pos = match.end()
    return out


def select(nodes: tuple[SimNode, ...], include: str | None, exclude: str | None) -> list[SimNode]:
    """The nodes (in `nodes` order) picked by include minus exclude; an empty include picks
    every node. A selector this evaluator can't read picks nothing."""
    index = {n.id: n for n in nodes}
    by_pair = {(n.location, n.name): n.id for n in nodes}
    ups = {n.id: {by_pair[p] for p in n.depends_on if p in by_pair} for n in nodes}
    downs: dict[str, set[str]] = {n.id: set() for n in nodes}
    for nid, parents in ups.items():
        for parent in parents:
            downs[parent].add(nid)
    graph = (nodes, ups, downs)
    try:
        picked = _evaluate(include, graph) if include and include.strip() else set(index)
        if exclude and exclude.strip():
            picked -= _evaluate(exclude, graph)
    except (ValueError, IndexError):
        return []
    return [n for n in nodes if n.id in picked]


def _evaluate(text: str, graph) -> set[str]:
    tokens = _tokens(text)
    result, pos = _or(tokens, 0, graph)
    if pos != len(tokens):
        raise ValueError("trailing tokens")
    return result


def _or(tokens, pos, graph):
    result, pos = _and(tokens, pos, graph)
    while pos < len(tokens) and tokens[pos][0] in ("OR", "||"):
        more, pos = _and(tokens, pos + 1, graph)
        result = result | more
    return result, pos


def _and(tokens, pos, graph):
    result, pos = _item(tokens, pos, graph)
    while pos < len(tokens) and tokens[pos][0] == "AND":
        more, pos = _item(tokens, pos + 1, graph)
        result = result & more
    return result, pos


def _item(tokens, pos, graph):
    if tokens[pos][0] == "(":
        result, pos = _or(tokens, pos + 1, graph)
        if tokens[pos][0] != ")":
            raise ValueError("unclosed (")
        return result, pos + 1
    up = tokens[pos][0] == "+"
    pos += up
    if tokens[pos][0] != "{":
        raise ValueError("expected {")
    end = next(i for i in range(pos, len(tokens)) if tokens[i][0] == "}")
    inside = tokens[pos + 1:end]
    pos = end + 1
    down = pos < len(tokens) and tokens[pos][0] == "+"
    pos += down
    nodes, ups, downs = graph
    matched = set() if any(k == "||" for k, _ in inside) else _term(inside, nodes)
    base = set(matched)
    for wanted, edges in ((up, ups), (down, downs)):
        if wanted:
            stack = list(base)
            while stack:
                for nxt in edges[stack.pop()]:
                    if nxt not in matched:
                        matched.add(nxt)
                        stack.append(nxt)
    return matched, pos


_FIELDS = {"name": "name", "nodeID": "id", "location": "location", "nodeType": "node_type"}


def _term(inside, nodes) -> set[str]:
    if len(inside) == 1 and inside[0][0] == "value":
        tests = [("name", inside[0][1])]
    else:
        tests = []
        for i in range(0, len(inside), 3):
            key, colon, value = inside[i:i + 3]
            if colon[0] != ":" or key[1] not in _FIELDS or value[0] != "value":
                raise ValueError("bad attribute")
            tests.append((key[1], value[1]))
    patterns = [(_FIELDS[k], re.compile(".*".join(map(re.escape, v.lower().split("*"))),
                                         re.DOTALL)) for k, v in tests]
    return {n.id for n in nodes
            if all(p.fullmatch(getattr(n, f).lower()) for f, p in patterns)}

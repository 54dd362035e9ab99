"""Benchmark of the selector preview (runs.selectors) at scale: a script, not a test.

    python bench/preview.py [--nodes 10000] [--repeat 30] [--seed 1]

Builds a catalogue of --nodes nodes (40 locations, 6 node types, each node reading 0 to 3
earlier nodes, mostly near ones, so lineage chains run hundreds of nodes deep), then times
preview() for selectors with and without lineage operators, including the worst cases
(every node plus everything downstream; an exclude closing over the whole graph). Prints
the median and the slowest of --repeat evaluations per selector, and the catalogue build
time, against the target:

    preview of a 10,000-node catalogue with lineage operators < 30 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runs.selectors import Catalogue, NodeRecord, preview  # noqa: E402

TARGET_MS = 30.0
TYPES = ("Stage", "Persistent Stage", "Dimension", "Fact", "View", "Work")
SELECTORS = [
    ("one node by location and name", "{ location: %(loc)s name: %(name)s }", ""),
    ("wildcards, no lineage", "{ name: *1* nodeType: Dim* }", ""),
    ("downstream of a location", "{ location: LOC_03 }+", ""),
    ("upstream of the last 100 nodes", "+{ name: %(last)s }", ""),
    ("both ways, AND, OR", "+{ location: LOC_1* }+ OR { nodeType: Fact } AND { name: *7* }", ""),
    ("everything plus downstream", "{ * }+", ""),
    ("all, minus upstream of facts", "", "+{ nodeType: Fact }"),
    ("lineage both sides", "{ name: NODE_00* }+", "+{ location: LOC_39 name: *9 }"),
]


def build(n: int, seed: int) -> list[NodeRecord]:
    rng = random.Random(seed)
    names = [f"NODE_{i:05d}" for i in range(n)]
    locations = [f"LOC_{rng.randrange(40):02d}" for _ in range(n)]
    records = []
    for i in range(n):
        parents = {max(0, i - rng.randint(1, 300)) for _ in range(rng.randint(0, 3))}
        parents.discard(i)
        deps = tuple((locations[p], names[p]) for p in sorted(parents))
        records.append(NodeRecord(str(i + 1), names[i], locations[i], rng.choice(TYPES), deps))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    records = build(args.nodes, args.seed)
    started = time.perf_counter()
    catalogue = Catalogue.from_records(records)
    build_ms = (time.perf_counter() - started) * 1000
    edges = sum(len(r.depends_on) for r in records)
    print(f"catalogue: {len(catalogue):,} nodes, {edges:,} dependencies, "
          f"built in {build_ms:.1f} ms (once per cached catalogue, not per preview)")
    print(f"{'selector':<32} {'matched':>8} {'median ms':>10} {'max ms':>8}  "
          f"target {TARGET_MS:.0f} ms")
    worst = 0.0
    middle = catalogue.by_id[str(args.nodes // 2)]
    last_hundred = f"NODE_{(args.nodes - 100) // 100:03d}*"
    fill = {"loc": middle.location, "name": middle.name, "last": last_hundred}
    for label, include, exclude in SELECTORS:
        include, exclude = include % fill, exclude % fill
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = preview(catalogue, include, exclude)
            times.append((time.perf_counter() - started) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{label:<32} {result.count:>8,} {median:>10.2f} {max(times):>8.2f}  "
              f"{'ok' if median < TARGET_MS else 'OVER'}")
    print(f"slowest median: {worst:.2f} ms against a target of {TARGET_MS:.0f} ms: "
          f"{'met' if worst < TARGET_MS else 'NOT met'}")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())

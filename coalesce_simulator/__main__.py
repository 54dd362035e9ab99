"""``python -m coalesce_simulator --port 8001``: serve the Coalesce stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import time

from coalesce_simulator.catalogue import DEFAULT_NODE_COUNT
from coalesce_simulator.modes import MODES
from coalesce_simulator.run import DEFAULT_RUN_SECONDS
from coalesce_simulator.server import make_server

TOKEN_ENV = "COALESCE_SIMULATOR_TOKEN"
DEFAULT_TOKEN = "sim-token"
DESCRIPTION = (
    "Serve a local fake of the Coalesce API (startRun, rerun, cancelRun, runStatus, runs, run "
    "details and results) for `make run` and end-to-end tests. Requests need "
    "'Authorization: Bearer <token>'; the token is --token, else "
    f"${TOKEN_ENV}, else '{DEFAULT_TOKEN}'. --misbehave ENV_ID=MODE makes one environment fail "
    f"({', '.join(MODES)}); IDs 'fail-<mode>' fail that way unasked. Runs take --run-seconds "
    "to finish; environment or job IDs ending in '-fails' (or job 13) fail two nodes. See "
    "docs/simulator.md for every endpoint and /_sim/ control."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coalesce_simulator", description=DESCRIPTION)
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None)
    parser.add_argument("--misbehave", action="append", default=[], metavar="ENV_ID=MODE")
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    parser.add_argument(
        "--run-seconds",
        type=float,
        default=DEFAULT_RUN_SECONDS,
        help="how long a run takes from start to its final state (default %(default)s)",
    )
    parser.add_argument(
        "--first-run-counter",
        type=int,
        default=None,
        help="first runCounter handed out (default: from the clock, so a restarted "
        "simulator never hands out a counter the dashboard already stored)",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=DEFAULT_NODE_COUNT,
        help="nodes in each environment's catalogue, 7 to 10000 (default %(default)s)",
    )
    return parser


def parse_misbehaviours(items: list[str]) -> dict[str, str]:
    """Turn ``["ENV_ID=MODE", ...]`` into ``{ENV_ID: MODE}``; ``ValueError`` if malformed."""
    behaviours: dict[str, str] = {}
    for item in items:
        environment_id, sep, mode = item.rpartition("=")
        if not sep or not environment_id or mode not in MODES:
            raise ValueError(
                f"--misbehave expects ENV_ID=MODE with MODE one of: {', '.join(MODES)}"
            )
        behaviours[environment_id] = mode
    return behaviours


def main(argv: list[str] | None = None) -> None:
    """Parse the options, bind, print the address and serve until Ctrl-C.

    Bad options exit with status 2 and a message (argparse); the socket is closed on exit.
    """
    parser = build_parser()
    options = parser.parse_args(argv)
    token = options.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    if not options.run_seconds >= 0:
        parser.error("--run-seconds must be a number >= 0")
    try:
        behaviours = parse_misbehaviours(options.misbehave)
    except ValueError as exc:
        parser.error(str(exc))
    server = make_server(
        options.host,
        options.port,
        token=token,
        behaviours=behaviours,
        hang_seconds=options.hang_seconds,
        run_seconds=options.run_seconds,
        first_run_counter=options.first_run_counter or _counter_from_clock(),
        node_count=options.nodes,
    )
    # A local fake token, so printing it is fine and saves a newcomer a lookup. Whoever
    # started us (make run, a test harness) waits for this line, hence the flush.
    print(f"Coalesce simulator listening on {server.base_url} (token: {token})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _counter_from_clock() -> int:
    """Tenths of a second since 2026-01-01: grows faster than runs are started here."""
    return max(1, int((time.time() - 1_767_225_600) * 10))


if __name__ == "__main__":
    # One line per request on stderr, as the dashboard's own log lines look.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    main()

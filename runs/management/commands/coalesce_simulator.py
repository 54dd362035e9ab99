"""``manage.py coalesce_simulator``: serve the local Coalesce stand-in until Ctrl-C."""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.simulator import DEFAULT_RUN_SECONDS, MODES, make_server

TOKEN_ENV = "COALESCE_SIMULATOR_TOKEN"
DEFAULT_TOKEN = "sim-token"


def parse_misbehaviours(items: list[str]) -> dict[str, str]:
    """Turn ``["ENV_ID=MODE", ...]`` into ``{ENV_ID: MODE}``; ``CommandError`` if malformed."""
    behaviours: dict[str, str] = {}
    for item in items:
        environment_id, sep, mode = item.rpartition("=")
        if not sep or not environment_id or mode not in MODES:
            raise CommandError(
                f"--misbehave expects ENV_ID=MODE with MODE one of: {', '.join(MODES)}"
            )
        behaviours[environment_id] = mode
    return behaviours


class Command(BaseCommand):
    help = (
        "Serve a local fake of the Coalesce API (startRun, rerun, cancelRun, runStatus, runs, run "
        "details and results) for `make run` "
        "and end-to-end tests. Requests need 'Authorization: Bearer <token>'; the token is "
        f"--token, else ${TOKEN_ENV}, else '{DEFAULT_TOKEN}'. --misbehave ENV_ID=MODE makes one "
        f"environment fail ({', '.join(MODES)}); IDs 'fail-<mode>' fail that way unasked. "
        "Runs take --run-seconds to finish; environment or job IDs ending in '-fails' (or job "
        "13) fail two nodes. See runs/simulator.py for every endpoint and /_sim/ control."
    )
    # The simulator does not depend on the project's models or URLs, so it starts even while
    # they are broken: that is when a newcomer most needs it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
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
            "--first-run-counter", type=int, default=None,
            help="first runCounter handed out (default: from the clock, so a restarted "
            "simulator never hands out a counter the dashboard already stored)",
        )

    def handle(self, *args, **options) -> None:
        token = options["token"] or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
        if not options["run_seconds"] >= 0:
            raise CommandError("--run-seconds must be a number >= 0")
        server = make_server(
            options["host"],
            options["port"],
            token=token,
            behaviours=parse_misbehaviours(options["misbehave"]),
            hang_seconds=options["hang_seconds"],
            run_seconds=options["run_seconds"],
            first_run_counter=options["first_run_counter"] or _counter_from_clock(),
        )
        # A local fake token, so printing it is fine and saves a newcomer a lookup.
        self.stdout.write(
            f"Coalesce simulator listening on {server.state.base_url} (token: {token})"
        )
        self.stdout.flush()  # whoever started us (make run, a test harness) waits for this line
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _counter_from_clock() -> int:
    """Tenths of a second since 2026-01-01: grows faster than runs are started here."""
    return max(1, int((time.time() - 1_767_225_600) * 10))

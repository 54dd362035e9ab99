"""A local stand-in for the Coalesce API, in the spirit of stripe-mock: standard library plus
cryptography, for development and tests only. It is not part of the dashboard (nothing in
``runs`` or ``dashboard`` imports it, and it is left out of the wheel).

Start it with ``python -m coalesce_simulator --port 8001``, or in a test with
``with running_simulator(run_seconds=3) as server: ...``. docs/simulator.md is the manual:
the endpoints, how runs progress and end, the misbehaviour modes (``MODES``, and environment
IDs ``fail-<mode>``), and the ``/_sim/`` control endpoints.

Modules: ``run`` (one run and its nodes), ``state`` (every run, behaviours, the clock, call
counts), ``validation`` (request bodies), ``modes`` (misbehaviour), ``server`` (HTTP).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from coalesce_simulator.modes import MODES
from coalesce_simulator.run import DEFAULT_RUN_SECONDS
from coalesce_simulator.server import SimulatorServer, make_server
from coalesce_simulator.state import SimulatorState

__all__ = [
    "DEFAULT_RUN_SECONDS",
    "MODES",
    "SimulatorServer",
    "SimulatorState",
    "make_server",
    "running_simulator",
]


@contextmanager
def running_simulator(**options: Any) -> Iterator[SimulatorServer]:
    """A simulator served from a thread on 127.0.0.1 (a free port) for a ``with`` block.

    ``options`` are ``make_server``'s keywords: token, behaviours, hang_seconds,
    run_seconds, clock, first_run_counter. Yields the server: ``server.base_url`` is where
    it listens, ``server.state`` its ``SimulatorState``. On the way out it stops serving,
    ends any "timeout" hang and closes the socket. Raises ``ValueError`` like make_server.
    """
    server = make_server("127.0.0.1", 0, **options)
    # shutdown() waits up to one poll interval; 0.01 s makes it instant for tests.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.01,), name="coalesce-simulator", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

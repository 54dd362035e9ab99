"""Support for the browser tests that follow runs to their end: a sweeper thread beside
the live server, and a simulator whose runs end after 3 s. Test modules import the
fixtures from here (a support module, not a test module)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connection, connections

from runs import sweep

RUN_SECONDS = 3
SWEEP_SECONDS = 0.5
# A run takes 3 s, the sweep lags up to 0.5 s and the page polls every 3 s.
FINISH_TIMEOUT_MS = 12_000


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    """The `simulator` fixture's runs end after 3 s here."""
    return {"run_seconds": RUN_SECONDS}


class Sweeper:
    """What the db_worker's task chain does, every 0.5 s, in a thread of its own.

    On PostgreSQL the thread has its own connection, closed when it stops (or the test
    database could not be flushed). SQLite's in-memory test database locks whole tables
    between connections, so there the thread shares the test's connection, as
    live_server's threads do; and since Django keeps one transaction state per connection,
    sweeps, requests and the test's own writes (`paused()`) then take turns.
    """

    def __init__(self) -> None:
        main = connections[DEFAULT_DB_ALIAS]  # the object itself: `connection` is a proxy
        self.shared = main if main.vendor == "sqlite" and main.is_in_memory_db() else None
        self.turn = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException | str] = []
        self.thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def paused(self) -> AbstractContextManager:
        return self.turn if self.shared is not None else nullcontext()

    def _request_started(self, **kwargs) -> None:
        self.turn.acquire()

    def _request_finished(self, **kwargs) -> None:
        self.turn.release()

    def start(self) -> None:
        if self.shared is not None:
            self.shared.inc_thread_sharing()
            request_started.connect(self._request_started, dispatch_uid="e2e-sweeper")
            request_finished.connect(self._request_finished, dispatch_uid="e2e-sweeper")
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if self.shared is not None:
            request_started.disconnect(dispatch_uid="e2e-sweeper")
            request_finished.disconnect(dispatch_uid="e2e-sweeper")
            self.shared.dec_thread_sharing()

    def _loop(self) -> None:
        if self.shared is not None:
            connections[self.shared.alias] = self.shared
        try:
            while not self.stop.is_set():
                try:
                    with self.paused():
                        self.errors.extend(sweep.sweep(interval=SWEEP_SECONDS).errors)
                except Exception as exc:  # noqa: BLE001 - asserted on by the fixture
                    self.errors.append(exc)
                self.stop.wait(SWEEP_SECONDS)
        finally:
            if self.shared is None:
                connection.close()


@pytest.fixture
def sweeper(live_server, simulator) -> Iterator[Sweeper]:
    sweeper = Sweeper()
    sweeper.start()
    yield sweeper
    sweeper.close()
    assert not sweeper.thread.is_alive()
    assert not sweeper.errors, sweeper.errors

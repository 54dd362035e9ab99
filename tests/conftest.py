"""Shared people and objects. Named people, explicit objects, no factory library:
- alice: an analyst in the "analysts" group, which may run the `profile` fixture
- bob: an analyst in no group (may run nothing)
- carol: an auditor (runs.view_run: may see every run, may run nothing)
- admin: a superuser
and the objects most modules need: the `profile` alice may run, `staging` (nobody but
admins may run it), an RSA key, a `coalesce` that answers nothing unless told to, and
`simulator`, a Coalesce simulator served over HTTP for one test. Plain builders are in
tests/factories.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import Group, User

from coalesce_simulator import SimulatorServer, running_simulator
from runs.models import EnvironmentProfile
from tests.factories import grant, make_profile


@pytest.fixture
def analysts(db) -> Group:
    return Group.objects.create(name="analysts")


@pytest.fixture
def alice(analysts) -> User:
    user = User.objects.create_user("alice", "alice@example.com", "alice-password")
    user.groups.add(analysts)
    return user


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def carol(db) -> User:
    user = User.objects.create_user("carol", "carol@example.com", "carol-password")
    return grant(user, "view_run")


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "admin-password")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def profile(analysts) -> EnvironmentProfile:
    """An OAuth profile on the US host that the analysts group may run."""
    return make_profile(groups=[analysts])


@pytest.fixture
def staging(db) -> EnvironmentProfile:
    """Environment 43, which no group may run."""
    return make_profile(name="Staging", environment_id="43", default_job_id="")


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA-2048 key for the whole session: generating one takes a noticeable while."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def coalesce() -> Iterator[responses.RequestsMock]:
    """Coalesce mocked at the HTTP boundary: a call to a URL not registered here fails, so
    `len(coalesce.calls) == 0` proves nothing was sent."""
    with responses.RequestsMock() as mock_coalesce:
        yield mock_coalesce


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    """``make_server`` options for `simulator`; override it in a module to change them."""
    return {}


@pytest.fixture
def simulator(simulator_options: dict[str, Any]) -> Iterator[SimulatorServer]:
    """A fresh Coalesce simulator on 127.0.0.1 for one test (token "sim-token" by default).

    ``simulator.base_url`` is where it listens and ``simulator.state`` its runs and calls.
    """
    with running_simulator(**simulator_options) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _one_request_at_a_time_on_in_memory_sqlite(django_db_setup) -> Iterator[None]:
    """On SQLite in memory, the live server's threads share the test's one connection, and
    a page that fires several requests at once (the history: its rows, its charts, its
    status poll) could leave two threads inside SQLite together, where they hang. There
    the live server answers one request at a time (Django then closes each connection, so
    a browser's keep-alive cannot hold it); on PostgreSQL it stays threaded. Here, not in
    tests/e2e: the first test to ask for live_server (the API schema run, say) starts the
    one server of the session, so the class must be set before any test runs."""
    from django.core.servers.basehttp import WSGIServer
    from django.db import connection
    from django.test.testcases import LiveServerThread

    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        yield
        return
    class OneAtATime(WSGIServer):
        # The live server thread itself serves, with the shared connection it was given.
        def __init__(self, *args, connections_override=None, **kwargs):
            super().__init__(*args, **kwargs)

    threaded = LiveServerThread.server_class
    LiveServerThread.server_class = OneAtATime
    yield
    LiveServerThread.server_class = threaded

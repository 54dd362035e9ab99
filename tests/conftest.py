"""Shared people and objects. Named people, explicit objects, no factory library:
- alice: an analyst in the "analysts" group, which may run the `profile` fixture
- bob: an analyst in no group (may run nothing)
- admin: a superuser
and `simulator`, a Coalesce simulator served over HTTP for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from coalesce_simulator import SimulatorServer, running_simulator
from runs.models import EnvironmentProfile


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
    profile = EnvironmentProfile(
        name="Production",
        base_url="https://app.coalescesoftware.io",
        environment_id="42",
        default_job_id="7",
        default_parallelism=8,
        snowflake_auth_type=EnvironmentProfile.AuthType.OAUTH,
    )
    profile.set_secret("api_token", "tok-production-0123456789", by="admin")
    profile.save()
    profile.allowed_groups.add(analysts)
    return profile


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

"""Test data through a few small helpers, one per kind of object, instead of a copy per module.

Each helper fills in only what every caller would otherwise repeat; a test passes the fields
its assertion is about, so reading the call still says what the object is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from runs.models import EnvironmentProfile, Run

BASE_URL = "https://app.coalescesoftware.io"
PRODUCTION_TOKEN = "tok-production-0123456789"
SIM_TOKEN = "sim-token"  # what the simulator accepts

# -- profiles and runs ------------------------------------------------------------------------


def make_profile(*, groups: Iterable[Group] = (), **fields) -> EnvironmentProfile:
    """A saved OAuth profile named Production (environment 42, job 7) on the US host.

    Secret fields (`api_token`, `snowflake_password`, `private_key_passphrase`) are stored
    encrypted; `private_key` takes a runs.keys.NormalisedKey. `groups` may run it.
    """
    values = {"name": "Production", "base_url": BASE_URL, "environment_id": "42",
              "default_job_id": "7", "default_parallelism": 8,
              "snowflake_auth_type": EnvironmentProfile.AuthType.OAUTH,
              "api_token": PRODUCTION_TOKEN, **fields}
    private_key = values.pop("private_key", None)
    secrets = {name: values.pop(name) for name in EnvironmentProfile.SECRETS if name in values}
    profile = EnvironmentProfile(**values)
    for name, value in secrets.items():
        if value:
            profile.set_secret(name, value, by="admin")
    if private_key is not None:
        profile.set_private_key(private_key, by="admin")
    profile.save()
    profile.allowed_groups.add(*groups)
    return profile


def sim_profile(base_url: str, environment_id: str, **fields) -> EnvironmentProfile:
    """A profile on the simulator at `base_url`, with the token the simulator accepts and no
    defaults of its own unless given (the simulator reads hints from `environment_id`)."""
    values = {"name": f"Simulated {environment_id}", "default_job_id": "",
              "default_parallelism": 16, "api_token": SIM_TOKEN, **fields}
    return make_profile(base_url=base_url, environment_id=environment_id, **values)


def build_run(profile: EnvironmentProfile, user: User, **fields) -> Run:
    """An unsaved started Run on `profile` by `user` (for bulk_create)."""
    values = {"submit_token": uuid.uuid4(), "environment_id": profile.environment_id,
              "parallelism": 8, "request_body": {}, "status": Run.Status.STARTED, **fields}
    return Run(profile=profile, created_by=user, **values)


def make_run(profile: EnvironmentProfile, user: User, **fields) -> Run:
    """A saved started Run on `profile` by `user`; `fields` override any column."""
    run = build_run(profile, user, **fields)
    run.save()
    return run


def grant(user: User, *codenames: str) -> User:
    """Give `user` these permissions (by codename) and return it."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def assert_redirects_to_login(response) -> None:
    """The answer to an anonymous visitor: a redirect to the login page."""
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# -- forms ------------------------------------------------------------------------------------


def run_form(profile: EnvironmentProfile, **fields) -> dict:
    """A valid run form for `profile`: its default job, no selectors, one empty parameter row
    and a fresh submit token."""
    data = {
        "environment": str(profile.pk),
        "job_id": "7",
        "include_selector": "",
        "exclude_selector": "",
        "parallelism": "8",
        "param_name": [""],
        "param_value": [""],
        "submit_token": str(uuid.uuid4()),
    }
    data.update(fields)
    return data


def profile_form(**fields) -> dict[str, str]:
    """Everything the admin's profile form posts, for a Basic profile with no secrets typed."""
    data = {
        "name": "Staging",
        "base_url": BASE_URL,
        "environment_id": "12",
        "api_token": "",
        "default_job_id": "",
        "default_parallelism": "16",
        "snowflake_auth_type": "Basic",
        "snowflake_username": "SVC_LOADER",
        "snowflake_password": "",
        "private_key": "",
        "private_key_passphrase": "",
        "snowflake_warehouse": "TRANSFORMING",
        "snowflake_role": "TRANSFORMER",
        "_save": "Save",
    }
    data.update(fields)
    return data


# -- keys and secrets -------------------------------------------------------------------------


def pem_of(private_key, passphrase: str | None = None, *,
           fmt=serialization.PrivateFormat.PKCS8) -> str:
    """`private_key` as PEM (PKCS#8 unless `fmt` says otherwise), encrypted with
    `passphrase` when one is given."""
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()


def key_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM, without its BEGIN/END markers."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def slices(text: str, width: int) -> list[str]:
    """Every `width`-character slice of `text` (none when it is shorter)."""
    return [text[i : i + width] for i in range(len(text) - width + 1)]


def leaks(outputs: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """'<secret name> in <output name>' for each secret found; never the values, so a
    failing assert prints no secret."""
    return [
        f"{name} in {where}"
        for where, text in outputs.items()
        for name, value in secrets.items()
        if value in text
    ]

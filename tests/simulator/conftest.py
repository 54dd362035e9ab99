"""The simulator's own tests speak to it over real HTTP, like the dashboard and browser tests.

Success answers are checked against the response schemas in Coalesce's own 2024 OpenAPI file
(tests/data/coalesce-openapi-2024.yaml), so the simulator cannot drift from the real shapes.
The simulator's clock is frozen here and moved with ``state.advance``, so progress is instant
and deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.simulator.support import PASSPHRASE, T0, TOKEN

SPEC_URI = "urn:coalesce-openapi-2024"
SPEC_PATH = Path(__file__).parent.parent / "data" / "coalesce-openapi-2024.yaml"


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    """A token of its own, one environment misbehaving from the start, a frozen clock."""
    return {
        "token": TOKEN,
        "behaviours": {"env-boot-500": "http500"},
        "hang_seconds": 1.5,
        "clock": lambda: T0,
    }


@pytest.fixture(scope="module")
def pems() -> dict[str, str]:
    """One fresh RSA 2048 key as PKCS#8 PEM, plain and passphrase-encrypted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(encryption) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode()

    return {
        "plain": pem(serialization.NoEncryption()),
        "encrypted": pem(serialization.BestAvailableEncryption(PASSPHRASE.encode())),
    }


@pytest.fixture(scope="session")
def spec_registry() -> Registry:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    return Registry().with_resource(SPEC_URI, DRAFT7.create_resource(spec))


@pytest.fixture(scope="session")
def openapi(spec_registry):
    """``validate(instance, path, method, status)`` against that response's OpenAPI schema."""

    def validate(instance: Any, path: str, method: str, status: str = "200") -> None:
        pointer = "/".join(
            ["paths", path.replace("/", "~1"), method, "responses", status, "content"]
            + ["application~1json", "schema"]
        )
        schema = {"$ref": f"{SPEC_URI}#/{pointer}"}
        jsonschema.Draft7Validator(schema, registry=spec_registry).validate(instance)

    return validate


@pytest.fixture(scope="session")
def component(spec_registry):
    """``validate(instance, "RunResult")`` against a schema under components/schemas."""

    def validate(instance: Any, name: str) -> None:
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        jsonschema.Draft7Validator(schema, registry=spec_registry).validate(instance)

    return validate

"""Coalesce's 2024 OpenAPI description (tests/data/coalesce-openapi-2024.yaml), read once."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).parent / "data" / "coalesce-openapi-2024.yaml"


class _JsonLikeLoader(yaml.SafeLoader):
    """SafeLoader that keeps date-times as strings, as they arrive over JSON."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@functools.cache
def _schemas() -> dict[str, Any]:
    return yaml.load(SPEC_PATH.read_text(), Loader=_JsonLikeLoader)["components"]["schemas"]


def openapi_example(schema: str) -> Any:
    """A fresh copy of the `example` of a schema in Coalesce's OpenAPI description."""
    return copy.deepcopy(_schemas()[schema]["example"])

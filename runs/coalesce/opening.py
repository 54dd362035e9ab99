"""Opening a client for an environment profile: `client_for`, and the profile's secrets
that every answer is scrubbed of."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from runs.coalesce.client import TOKEN_UNREADABLE, CoalesceClient, CoalesceError, FailureKind
from runs.encryption import CredentialDecryptionError
from runs.validators import normalise_base_url

# The profile's secrets besides the API token (EnvironmentProfile.SECRETS).
SNOWFLAKE_SECRETS = ("snowflake_password", "private_key", "private_key_passphrase")


@sensitive_variables()
def snowflake_secrets(profile) -> tuple[str, ...]:
    """The profile's Snowflake secrets: Coalesce quotes them in node errors and failure
    reasons long after the run was started, so every read scrubs them."""
    found = []
    for name in SNOWFLAKE_SECRETS:
        try:
            found.append(profile.get_secret(name))
        except CredentialDecryptionError:
            continue  # not sendable either, so not echoed by anything we send now
    return tuple(value for value in found if value)


@contextmanager
def client_for(profile, **options) -> Iterator[CoalesceClient]:
    """The one way to open a client for an environment profile, closed on exit.

    `profile` is anything with `base_url` and `get_secret` (this module never imports the
    models). An API token that cannot be decrypted is a NOT_SENT CoalesceError, so callers
    handle every failure with one `except CoalesceError`.
    """
    try:
        # Checked again at call time: the allow-list may have changed since the save.
        base_url = normalise_base_url(profile.base_url)
    except ValidationError as exc:
        raise CoalesceError(FailureKind.NOT_SENT, f"The profile's Coalesce base URL is not "
                            f"allowed: {exc.messages[0]} Nothing was sent.") from None
    try:
        token = profile.get_secret("api_token")
    except CredentialDecryptionError:
        raise CoalesceError(FailureKind.NOT_SENT, TOKEN_UNREADABLE) from None
    with CoalesceClient(base_url, token, echoed_secrets=snowflake_secrets(profile),
                        **options) as client:
        yield client

from __future__ import annotations

import base64
import io
import os

import pytest
from django.core.management import CommandError, call_command

from runs import encryption
from runs.models import EnvironmentProfile

pytestmark = pytest.mark.django_db

OLD = "old:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
NEW = "new:" + base64.urlsafe_b64encode(os.urandom(32)).decode()


def _run(*args) -> str:
    out = io.StringIO()
    call_command("rotate_credentials_key", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def profiles_on_old_key(settings):
    settings.CREDENTIALS_ENCRYPTION_KEYS = OLD
    made = []
    for i in range(3):
        p = EnvironmentProfile(name=f"P{i}", base_url="https://app.coalescesoftware.io",
                               environment_id=str(i), snowflake_auth_type="Basic",
                               snowflake_username="svc")
        p.set_secret("api_token", f"token-{i}-abcdef", by="admin")
        p.set_secret("snowflake_password", f"password-{i}-abcdef", by="admin")
        p.save()
        made.append(p)
    return made


def test_it_re_encrypts_every_secret_with_the_new_key(settings, profiles_on_old_key):
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    output = _run()
    assert "old: 6" in output and "re-encrypted: 6" in output
    kids = {encryption.kid_of(ct) for p in EnvironmentProfile.objects.all()
            for ct in (p.api_token_ct, p.snowflake_password_ct)}
    assert kids == {"new"}
    # --check now reports nothing left on the old key...
    assert "re-encrypted: 0" in _run("--check")
    # ...and the old key can go, with everything still decrypting.
    settings.CREDENTIALS_ENCRYPTION_KEYS = NEW
    for i, p in enumerate(EnvironmentProfile.objects.order_by("name")):
        assert p.get_secret("api_token") == f"token-{i}-abcdef"
        assert p.get_secret("snowflake_password") == f"password-{i}-abcdef"


def test_it_is_idempotent(settings, profiles_on_old_key):
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    _run()
    before = list(EnvironmentProfile.objects.values_list("api_token_ct", flat=True))
    assert "re-encrypted: 0" in _run()
    assert list(EnvironmentProfile.objects.values_list("api_token_ct", flat=True)) == before


def test_dry_run_changes_nothing(settings, profiles_on_old_key):
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    assert "re-encrypted: 6" in _run("--dry-run")
    assert {encryption.kid_of(ct) for ct in
            EnvironmentProfile.objects.values_list("api_token_ct", flat=True)} == {"old"}


def test_check_fails_while_secrets_remain_on_an_old_key(settings, profiles_on_old_key):
    settings.CREDENTIALS_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    with pytest.raises(CommandError, match="still on an older key"):
        _run("--check")


def test_it_reports_secrets_it_cannot_decrypt_without_printing_them(settings, profiles_on_old_key):
    settings.CREDENTIALS_ENCRYPTION_KEYS = NEW  # the old key was dropped too early
    err = io.StringIO()
    with pytest.raises(CommandError, match="6 secret"):
        call_command("rotate_credentials_key", stdout=io.StringIO(), stderr=err)
    assert "token-0" not in err.getvalue() and "field api_token" in err.getvalue()


def test_generate_prints_a_usable_entry():
    out = io.StringIO()
    call_command("generate_credentials_key", "--kid", "k2026", stdout=out)
    assert encryption.parse_key_ring(out.getvalue().strip()).primary == "k2026"

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from runs.validators import (
    OFFICIAL_BASE_URLS,
    normalise_base_url,
    validate_login_name,
    validate_snowflake_identifier,
)


@pytest.mark.parametrize("url", [url for url, _ in OFFICIAL_BASE_URLS])
def test_it_accepts_every_official_host(url):
    assert normalise_base_url(url) == url


def test_it_normalises_case_and_trailing_slash():
    assert (normalise_base_url(" HTTPS://App.US-East-1.aws.coalescesoftware.io/ ")
            == "https://app.us-east-1.aws.coalescesoftware.io")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://evil.example", "not an official Coalesce host"),
        ("https://app.coalescesoftware.io.evil.example", "not an official Coalesce host"),
        ("https://acme.app.eu.coalescesoftware.io", "COALESCE_ALLOWED_HOSTS"),
        ("http://app.coalescesoftware.io", "over https"),
        ("https://app.coalescesoftware.io@evil.example", "user name or an @"),
        ("https://user:pw@app.coalescesoftware.io", "user name or an @"),
        ("https://203.0.113.7", "not an IP address"),
        ("https://[2001:db8::1]", "not an IP address"),
        ("https://app.coalescesoftware.io:8443", "remove the port"),
        ("https://app.coalescesoftware.io/api/v1", "only the scheme and host"),
        ("https://app.coalescesoftware.io/?next=x", "only the scheme and host"),
        ("ftp://app.coalescesoftware.io", "Enter a URL"),
        ("app.coalescesoftware.io", "Enter a URL"),
        ("https://app.coalescesoftware.io:notaport", "Enter a URL"),
    ],
)
def test_it_rejects_anything_else_with_a_reason(url, message):
    with pytest.raises(ValidationError, match=message):
        normalise_base_url(url)


def test_it_accepts_hosts_an_operator_allowed(settings):
    settings.COALESCE_ALLOWED_HOSTS = ["acme.app.eu.coalescesoftware.io"]
    assert (normalise_base_url("https://acme.app.eu.coalescesoftware.io")
            == "https://acme.app.eu.coalescesoftware.io")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001", "http://localhost:8001",
                                 "http://[::1]:8001"])
def test_loopback_http_needs_the_explicit_setting(settings, url):
    settings.COALESCE_ALLOW_INSECURE_LOOPBACK = True
    assert normalise_base_url(url) == url
    settings.COALESCE_ALLOW_INSECURE_LOOPBACK = False
    with pytest.raises(ValidationError, match="COALESCE_ALLOW_INSECURE_LOOPBACK"):
        normalise_base_url(url)


def test_a_private_address_is_not_loopback(settings):
    settings.COALESCE_ALLOW_INSECURE_LOOPBACK = True
    with pytest.raises(ValidationError):
        normalise_base_url("http://10.0.0.5:8001")


@pytest.mark.parametrize("name", ["TRANSFORMER", "my_wh", "_x$1", '"Data Team"', '"a""b"'])
def test_it_accepts_snowflake_identifiers(name):
    assert validate_snowflake_identifier(name, "role") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Data Team", "wrapped in double quotes"),
        ("1WH", "must start with a letter or underscore"),
        ("my-wh", "only letters, digits"),
        ('"unterminated', "must end with a double quote"),
        ('"a"b"', "written twice"),
        ("A" * 256, "at most 255"),
    ],
)
def test_it_explains_a_bad_identifier(name, message):
    with pytest.raises(ValidationError, match=message):
        validate_snowflake_identifier(name, "role")


@pytest.mark.parametrize("login", ["svc_dbt", "jane.doe@example.com", "JANE-DOE"])
def test_it_accepts_login_names(login):
    assert validate_login_name(login) == login


@pytest.mark.parametrize("login", [" padded", "tab\there", "x" * 256])
def test_it_rejects_bad_login_names(login):
    with pytest.raises(ValidationError):
        validate_login_name(login)

"""Test settings: the production settings module with test-only values filled in.

The real settings read everything from the environment; here we give the variables a
test value when the caller has not set one (DATABASE_URL, for instance, is left to the
caller so the same suite runs on SQLite and on PostgreSQL).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789abcdef")
# A fixed, test-only key ring (never used outside the test suite).
os.environ.setdefault(
    "CREDENTIALS_ENCRYPTION_KEYS", "test1:" + "dGVzdC1vbmx5LWtleS0zMi1ieXRlcy1sb25nLSEhISE="
)
os.environ.setdefault("COALESCE_ALLOW_INSECURE_LOOPBACK", "true")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SQLITE_PATH", ":memory:")

from dashboard.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

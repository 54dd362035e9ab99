"""A webhook receiver's check, as the README shows it: verify the signature, refuse old
timestamps. (tests/test_notifications.py runs this very file.)"""

import hashlib
import hmac
import time


def verify(secret: str, header: str, body: bytes, max_age: int = 300) -> bool:
    """`header` is X-Dashboard-Signature: "t=<unix time>,v1=<hex HMAC-SHA256>"."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age:
        return False  # missing, or too old: a replayed message
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), signature)

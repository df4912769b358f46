"""The bearer-token check caches the signature check only: every time rule still holds per request."""

from __future__ import annotations

import pytest

from trioworks.server._errors import Unauthorized
from trioworks.server.http import Authenticator


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _auth(clock: Clock) -> tuple[Authenticator, str]:
    auth = Authenticator("s" * 32, {"w": "secret"}, clock, token_ttl=60)
    token = auth.issue({"grant_type": "client_credentials", "client_id": "w", "client_secret": "secret"})
    return auth, f"Bearer {token['access_token']}"


def test_a_cached_token_still_expires() -> None:
    clock = Clock()
    auth, header = _auth(clock)
    assert auth.verify(header) == "w"
    assert auth.verify(header) == "w"  # from the cache
    clock.now += 61
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(header)


def test_a_cached_token_of_a_removed_client_is_refused() -> None:
    auth, header = _auth(Clock())
    assert auth.verify(header) == "w"
    del auth.clients["w"]  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized, match="no longer configured"):
        auth.verify(header)


def test_a_tampered_token_is_refused_every_time() -> None:
    auth, header = _auth(Clock())
    tampered = header[:-2] + ("A" if header[-2] != "A" else "B") + header[-1]
    for _ in range(2):
        with pytest.raises(Unauthorized, match="invalid token"):
            auth.verify(tampered)
    assert auth.verify(header) == "w"


def test_a_token_signed_with_another_secret_is_refused_even_after_ours_was_cached() -> None:
    clock = Clock()
    auth, header = _auth(clock)
    other = Authenticator("t" * 32, {"w": "secret"}, clock, token_ttl=60)
    token = other.issue({"grant_type": "client_credentials", "client_id": "w", "client_secret": "secret"})
    assert auth.verify(header) == "w"
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.verify(f"Bearer {token['access_token']}")

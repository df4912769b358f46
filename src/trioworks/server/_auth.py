"""OAuth2 client-credentials tokens: HS256 JWTs signed with PyJWT.

Pure and synchronous (signing a JWT takes microseconds, so it runs on the loop).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
import jwt

from ._errors import BadRequest, Unauthorized

__all__ = ["FORM", "Authenticator", "parse_clients", "token_form"]

_ISSUER = "trioworks"
FORM = "application/x-www-form-urlencoded"


def token_form(media_type: str, raw: bytes) -> dict[str, Any]:
    """The fields of a token request body, JSON or form-urlencoded; 400 if undecodable."""
    if media_type == FORM:
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    try:
        form = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        form = None
    if not isinstance(form, dict):
        raise BadRequest("token request body must be a JSON object")
    return form


def parse_clients(text: str) -> dict[str, str]:
    """``"id:secret,id2:secret2"`` (``TRIOWORKS_CLIENTS``) or one ``--client`` value.

    Raises ValueError naming the bad entry.
    """
    clients = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        client_id, sep, secret = entry.partition(":")
        if not sep or not client_id or not secret:
            raise ValueError(f"bad client {entry.split(':')[0]!r}: expected ID:SECRET")
        clients[client_id] = secret
    return clients


@attrs.frozen
class Authenticator:
    """Issues and verifies bearer tokens for the configured clients.

    ``clock`` gives POSIX seconds (the server's injectable clock), so expiry is testable.
    """

    secret: str
    clients: Mapping[str, str]
    clock: Any
    token_ttl: int = 3600

    def issue(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """The token response for a client-credentials request (JSON or form fields).

        400 for a missing field or another grant type; 401 for unknown client or wrong secret.
        """
        missing = [
            name
            for name in ("grant_type", "client_id", "client_secret")
            if not isinstance(form.get(name), str) or not form[name]
        ]
        if missing:
            raise BadRequest(f"missing field(s): {', '.join(missing)}", details={"missing": missing})
        if form["grant_type"] != "client_credentials":
            raise BadRequest(f"unsupported grant_type {form['grant_type']!r}: only client_credentials")
        expected = self.clients.get(form["client_id"])
        # Compare even for an unknown client so that timing does not tell which ids exist.
        ok = hmac.compare_digest((expected or "\0").encode(), form["client_secret"].encode())
        if expected is None or not ok:
            raise Unauthorized("invalid client credentials")
        now = int(self.clock())
        claims = {"sub": form["client_id"], "iss": _ISSUER, "iat": now, "exp": now + self.token_ttl}
        if isinstance(form.get("scope"), str):
            claims["scope"] = form["scope"]
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}

    def verify(self, authorization: str | None) -> str:
        """The client id of a valid ``Authorization: Bearer <jwt>`` header; 401 otherwise."""
        if not authorization:
            raise Unauthorized("missing Authorization: Bearer <token> header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        # Time claims are checked against our clock, not PyJWT's wall clock, so tests can move time.
        if int(claims["exp"]) <= self.clock():
            raise Unauthorized("token expired")
        if claims["sub"] not in self.clients:
            raise Unauthorized(f"client {claims['sub']!r} is no longer configured")
        return str(claims["sub"])

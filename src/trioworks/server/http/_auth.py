"""OAuth2 client-credentials tokens: HS256 JWTs signed with PyJWT.

Pure and synchronous (signing a JWT takes microseconds, so it runs on the loop).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import jwt

from .._errors import BadRequest, Forbidden, Unauthorized

__all__ = [
    "FORM",
    "Authenticator",
    "Client",
    "load_clients_file",
    "parse_clients",
    "read_secret_file",
    "secret_from_file",
    "token_form",
]

_ISSUER = "trioworks"
LEEWAY = 10.0
"""Seconds an ``iat`` or ``nbf`` claim may lie in the future (clock skew between servers)."""
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


@attrs.frozen
class Client:
    r"""One OAuth client: its secret, and what it may touch.

    ``workers``: the worker types it may poll (and so the activities it may report on); None
    means every type. Its workers' ``worker_id``\ s are bound to it on first use (see
    :meth:`~trioworks.server.Storage.bind_worker`), so no other client can report as them.
    """

    secret: str
    workers: frozenset[str] | None = None


def _client(value: str | Client) -> Client:
    return value if isinstance(value, Client) else Client(value)


def parse_clients(text: str) -> dict[str, Client]:
    """``"id:secret,id2:secret2:worker1,worker2"`` (``TRIOWORKS_CLIENTS``) or one ``--client`` value.

    An entry is ``ID:SECRET`` (every worker type) or ``ID:SECRET:WORKER``; items after it with
    no ``:`` are more worker types of the same client. So a secret may not contain ``:`` or
    ``,``. Raises ValueError naming the bad entry.
    """
    clients: dict[str, Client] = {}
    last: str | None = None
    for entry in filter(None, (part.strip() for part in text.split(","))):
        if ":" not in entry:
            workers = None if last is None else clients[last].workers
            if last is None or workers is None:
                raise ValueError(f"bad client {entry!r}: expected ID:SECRET[:WORKER,...]")
            clients[last] = Client(clients[last].secret, workers | {entry})
            continue
        client_id, _, rest = entry.partition(":")
        secret, sep, worker = rest.partition(":")
        if not client_id or not secret or (sep and not worker):
            raise ValueError(f"bad client {client_id!r}: expected ID:SECRET[:WORKER,...]")
        clients[client_id] = Client(secret, frozenset({worker}) if worker else None)
        last = client_id
    return clients


def load_clients_file(path: Path) -> dict[str, Client]:
    """Clients from a TOML file: ``[clients.ID]`` tables with ``secret`` (or ``secret_file``)
    and optional ``workers = ["type", ...]``. Raises ValueError naming the bad entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    table = data.get("clients")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: expected [clients.ID] tables")
    clients = {}
    for client_id, spec in table.items():
        where = f"{path}: clients.{client_id}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a table with 'secret'")
        secret = spec.get("secret")
        if secret is None and isinstance(spec.get("secret_file"), str):
            secret = read_secret_file(path.parent / spec["secret_file"])
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"{where}.secret: required, a non-empty string (or secret_file)")
        workers = spec.get("workers")
        if workers is not None and (
            not isinstance(workers, list) or not all(isinstance(w, str) and w for w in workers)
        ):
            raise ValueError(f"{where}.workers: expected a list of worker types")
        clients[client_id] = Client(secret, None if workers is None else frozenset(workers))
    return clients


def read_secret_file(path: Path) -> str:
    """The stripped content of a secret file, refused (ValueError) if others may read it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: readable by group or others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ValueError(f"{path}: empty")
    return secret


def secret_from_file(path: Path, legacy: str | None = None) -> str:
    """The JWT signing secret kept in ``path`` (mode 0600), creating the file on first start.

    A new file holds ``legacy`` when given (the secret older versions kept in the database, so
    that tokens already issued stay valid), else a fresh random secret. Blocking (file I/O).
    """
    try:
        return read_secret_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = legacy or secrets.token_urlsafe(32)
    try:  # O_EXCL: two servers starting together on one directory keep the first one's secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret_file(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


_MAX_VERIFIED = 10_000


@attrs.frozen
class Authenticator:
    """Issues and verifies bearer tokens for the configured clients.

    ``clock`` gives POSIX seconds (the server's injectable clock), so expiry is testable.
    """

    secret: str
    clients: Mapping[str, Client] = attrs.field(converter=lambda m: {k: _client(v) for k, v in m.items()})
    clock: Any = None
    token_ttl: int = 3600
    # token -> its claims, once its signature checked: a worker sends the same token with every
    # request, and the HMAC + decoding cost about 5 % of the server's CPU per activity. Only the
    # signature check is cached: expiry, iat/nbf and the client's configuration are checked on
    # every request. Cleared at _MAX_VERIFIED entries, so invented tokens cannot grow it (those
    # fail the signature and are never stored anyway).
    _verified: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False, eq=False)

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
        client = self.clients.get(form["client_id"])
        expected = client.secret if client is not None else None
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
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token.strip())
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = claims
        # Time claims are checked against our clock, not PyJWT's wall clock, so tests can move time.
        now = self.clock()
        try:
            if float(claims["exp"]) <= now:
                raise Unauthorized("token expired")
            for name in ("iat", "nbf"):  # a token from the future was not issued by us, or not yet valid
                if name in claims and float(claims[name]) > now + LEEWAY:
                    raise Unauthorized(f"token {name} is in the future")
        except (TypeError, ValueError, OverflowError):
            raise Unauthorized("invalid token: exp, iat and nbf must be numbers") from None
        if not isinstance(claims["sub"], str) or claims["sub"] not in self.clients:
            raise Unauthorized(f"client {claims['sub']!r} is no longer configured")
        return claims["sub"]

    def _decode(self, token: str) -> dict[str, Any]:
        """The claims of a token signed with our secret by our issuer; 401 otherwise (no time checks)."""
        try:
            return jwt.decode(
                token,
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

    def check_worker(self, client_id: str, worker: str) -> None:
        """403 unless ``client_id`` may poll (and report on) activities of worker type ``worker``."""
        allowed = self.clients[client_id].workers
        if allowed is not None and worker not in allowed:
            raise Forbidden(f"client {client_id!r} may not work on worker type {worker!r}")

"""The server's HTTP layer: the Kruxia Flow API on Starlette, served by hypercorn's Trio worker.

The top layer of :mod:`trioworks.server` (``http`` → ``rules`` ← ``storage``): it checks each
request completely (422 naming the field) and calls the :class:`~trioworks.server.Storage`
through a :class:`Context`, never the SQL or the rules' row functions.

- ``_routes``: how a route is declared (a decorator next to its handler); ``_app``:
  :func:`build_app` mounts the routes of ``_service`` (health, readiness, info, tokens,
  metrics), ``_api`` (worker queue, definitions, workflows) and ``_files`` (activity files);
- ``_context``: :class:`Context` (storage, limiters, clock) and the body, response and error
  helpers; ``_requests`` and ``_limits``: parsing request bodies within bounds;
- ``_auth``: clients, OAuth2 client-credentials tokens (JWT); ``_hypercorn``: the guard for a
  send/EOF race in hypercorn's connection handler.

The stable API is :mod:`trioworks.server`; these names are for the server's own wiring.
"""

from ._app import build_app
from ._auth import Authenticator, Client, load_clients_file, parse_clients, secret_from_file
from ._context import Context
from ._hypercorn import hypercorn_guard

__all__ = [
    "Authenticator",
    "Client",
    "Context",
    "build_app",
    "hypercorn_guard",
    "load_clients_file",
    "parse_clients",
    "secret_from_file",
]

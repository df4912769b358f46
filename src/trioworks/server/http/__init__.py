"""The server's HTTP layer: the Kruxia Flow API on Starlette's routing, served by our HTTP/1.1 front.

The top layer of :mod:`trioworks.server` (``http`` → ``rules`` ← ``storage``): it checks each
request completely (422 naming the field) and calls the :class:`~trioworks.server.Storage`
through a :class:`Context`, never the SQL or the rules' row functions.

- ``_routes``: how a route is declared (a decorator next to its handler); ``_app``:
  :func:`build_app` mounts the routes of ``_service`` (health, readiness, info, tokens,
  metrics), ``_api`` (worker queue, definitions, workflows) and ``_files`` (activity files);
- ``_context``: :class:`Context` (storage, limiters, clock) and the body, response and error
  helpers; ``_requests`` and ``_limits``: parsing request bodies within bounds;
- ``_auth``: clients, OAuth2 client-credentials tokens (JWT);
- ``_front`` (:func:`serve_http`: listeners, a task per connection, shutdown) over ``_h1`` (HTTP/1.1
  on one stream, parsed by httptools); ``_direct`` (:func:`direct_responder`: the app's routes
  called without Starlette's ASGI layers; before them ``_fast``, the worker routes served
  without Starlette at all) and ``_asgi`` (:func:`asgi_responder`: any ASGI app).

The stable API is :mod:`trioworks.server`; these names are for the server's own wiring.
"""

from ._app import build_app
from ._asgi import asgi_responder
from ._auth import Authenticator, Client, load_clients_file, parse_clients, secret_from_file
from ._context import Context
from ._direct import direct_responder
from ._front import serve_http

__all__ = [
    "Authenticator",
    "Client",
    "Context",
    "asgi_responder",
    "build_app",
    "direct_responder",
    "load_clients_file",
    "parse_clients",
    "secret_from_file",
    "serve_http",
]

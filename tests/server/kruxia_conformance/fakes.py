"""Local stand-ins for the services Kruxia's examples call, reached through the std worker's
``http_request`` transport (so the example YAML stays byte-for-byte unchanged).

- ``api.weather.gov``: ``/gridpoints/LOT/76,73/forecast`` and ``/points/{lat},{lon}`` (NWS shapes);
- ``geocoding.geo.census.gov``: ``/geocoder/locations/onelineaddress`` (Census shape);
- ``httpbin.org``: ``/get`` (``args``, ``url``, as httpbin answers);
- ``mailpit:8025``: ``/api/v1/send`` (Mailpit's send API), every message kept in :attr:`Fakes.mail`.

Any other host fails to connect, as an unreachable host would.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOSTS = frozenset({"api.weather.gov", "geocoding.geo.census.gov", "httpbin.org", "mailpit"})
FORECAST = {
    "properties": {
        "periods": [
            {
                "number": 1,
                "name": "Tonight",
                "temperature": 41,
                "shortForecast": "Mostly Clear",
                "detailedForecast": "Mostly clear, with a low around 41.",
            },
        ]
    }
}


class Fakes:
    def __init__(self) -> None:
        self.mail: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/gridpoints/{office}/{grid}/forecast", self.forecast),
                Route("/points/{coords}", self.points),
                Route("/geocoder/locations/onelineaddress", self.geocode),
                Route("/get", self.httpbin_get),
                Route("/api/v1/send", self.send, methods=["POST"]),
            ]
        )
        self._asgi = httpx.ASGITransport(app=self.app)
        self.transport = _Routing(self)

    async def forecast(self, request: Request) -> Response:
        return Response(json.dumps(FORECAST), media_type="application/geo+json")

    async def points(self, request: Request) -> Response:
        lat, _, lon = request.path_params["coords"].partition(",")
        body = {
            "properties": {
                "forecast": f"https://api.weather.gov/gridpoints/LWX/97,71/forecast?lat={lat}&lon={lon}"
            }
        }
        return JSONResponse(body, media_type="application/geo+json")

    async def geocode(self, request: Request) -> Response:
        address = request.query_params.get("address", "")
        matches = (
            [{"matchedAddress": address.upper(), "coordinates": {"x": -77.0365, "y": 38.8977}}]
            if address
            else []
        )
        return JSONResponse(
            {"result": {"input": {"address": {"address": address}}, "addressMatches": matches}}
        )

    async def httpbin_get(self, request: Request) -> Response:
        return JSONResponse(
            {"args": dict(request.query_params), "headers": dict(request.headers), "url": str(request.url)}
        )

    async def send(self, request: Request) -> Response:
        message = await request.json()
        self.mail.append(message)
        return JSONResponse({"ID": f"msg-{len(self.mail)}"})


class _Routing(httpx.AsyncBaseTransport):
    def __init__(self, fakes: Fakes) -> None:
        self._fakes = fakes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._fakes.requests.append(f"{request.method} {request.url}")
        if request.url.host not in HOSTS:
            raise httpx.ConnectError(
                f"no route to {request.url.host} (conformance suite: offline)", request=request
            )
        return await self._fakes._asgi.handle_async_request(request)

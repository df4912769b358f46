"""The worker's hand-written hot paths agree with the general ones they replace.

- :func:`~trioworks.worker._wire.pending_activity` (a poll item -> PendingActivity) gives what the
  worker's cattrs converter gives for every well-formed item, and a ValueError (which the poller
  treats as a failed poll) for a malformed one;
- the request bytes the client builds for its small JSON calls are what httpx would send (same
  body bytes, same headers), and an output encoded once is embedded unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import cattrs
import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.worker import WorkerConfig
from trioworks.worker._client import WorkerApiClient, encode_json
from trioworks.worker._wire import PendingActivity, converter, pending_activity

FIELDS = (
    *("activity_id", "workflow_id", "activity_key", "worker", "activity_name"),
    *("parameters", "settings", "signal_data", "timeout_seconds", "output_definitions"),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
objects = st.dictionaries(st.text(), json_values, max_size=4)
ids = st.text(min_size=1) | st.integers(0, 2**40)

items = st.fixed_dictionaries(
    {
        "activity_id": ids,
        "workflow_id": ids,
        "activity_key": ids,
        "worker": ids,
        "activity_name": ids,
    },
    optional={
        "parameters": objects,
        "settings": st.none() | objects,
        "timeout_seconds": st.none() | st.integers(0, 10**6),
        "output_definitions": st.none() | st.lists(objects, max_size=3),
        "signal_data": st.none() | objects,
        "extra": json_values,
    },
)


@given(items)
def test_a_well_formed_item_gives_what_cattrs_gives(item: dict[str, Any]) -> None:
    assert pending_activity(item) == converter.structure(item, PendingActivity)


@given(
    items,
    st.sampled_from(FIELDS),
    st.sampled_from([[1], "text", 1.5, {"a": 1}, [{"a": 1}, 2], True, float("nan")]),
)
def test_a_malformed_item_is_a_value_error(item: dict[str, Any], field: str, bad: Any) -> None:
    acceptable = {
        "parameters": ({"a": 1},),
        "settings": ({"a": 1},),
        "signal_data": ({"a": 1},),
        "timeout_seconds": (1.5,),  # a whole number of seconds is taken, as int() would
        "output_definitions": (),
    }.get(field, ("text",))
    item = {**item, field: bad}
    if any(bad == ok and type(bad) is type(ok) for ok in acceptable):
        pending_activity(item)
        return
    with pytest.raises(ValueError):
        pending_activity(item)


@pytest.mark.parametrize("item", [None, [], "x", {"activity_id": "a"}])
def test_not_an_activity_at_all(item: Any) -> None:
    with pytest.raises(ValueError):
        pending_activity(item)
    with pytest.raises((cattrs.BaseValidationError, ValueError, TypeError, AttributeError)):
        converter.structure(item, PendingActivity)


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(st.text(), json_values, max_size=4),
    st.sampled_from(["a-b_c.d~e", "0193a1b2-aaaa-bbbb-cccc-1234567890ab", "sp ace", "é/ü?x#y%41"]),
    st.booleans(),
)
def test_request_bytes_are_what_httpx_would_send(
    output: dict[str, Any], activity_id: str, token: bool
) -> None:
    sent: list[bytes] = []

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def serve(stream: trio.SocketStream) -> None:
            data = b""
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
                data += await stream.receive_some(65536)
            sent.append(data)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

        credentials = {"client_id": "c", "client_secret": "s"} if token else {}
        config = WorkerConfig(api_url=f"http://127.0.0.1:{port}/base/", worker="w", **credentials)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, serve, listeners)
            async with WorkerApiClient(config) as client:
                if token:  # as if fetched
                    client._token, client._refresh_at = "t0k3n", float("inf")
                    client._auth_line = b"Authorization: Bearer t0k3n\r\n"
                body = {"output": encode_json(output), "cost_usd": 0.5}
                await client.complete(activity_id, body, None)
            nursery.cancel_scope.cancel()

        headers = {"User-Agent": client._headers["User-Agent"], "Accept": "application/json"}
        if token:
            headers["Authorization"] = "Bearer t0k3n"
        expected = httpx.Request(
            "POST",
            f"http://127.0.0.1:{port}/base/api/v1/activities/{activity_id}/complete",
            json={"worker_id": config.worker_id, "output": output, "cost_usd": 0.5},
            headers=headers,
        )
        head, _, body_sent = sent[0].partition(b"\r\n\r\n")
        line, *header_lines = head.split(b"\r\n")
        assert line == b"POST %s HTTP/1.1" % expected.url.raw_path
        got = sorted((name.lower(), value) for name, _, value in (h.partition(b": ") for h in header_lines))
        assert got == sorted((name.lower(), value) for name, value in expected.headers.raw)
        assert body_sent == expected.content
        assert json.loads(body_sent)["output"] == output

    trio.run(main)


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b": ")
        if name.lower() == b"content-length":
            return int(value)
    return 0

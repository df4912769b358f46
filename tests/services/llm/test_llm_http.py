"""The OpenAI-compatible backend over a real TCP socket: a tiny hand-written SSE server.

Checks what a MockTransport cannot: httpx streams a real chunked response under Trio, and a
cancelled request closes the connection (the server sees the client hang up). Real time,
seconds-scale bounds.
"""

from __future__ import annotations

import json
from functools import partial

import trio

from trioworks.bus import LLMParams
from trioworks.services.llm import ChatMessage, LLMConfig, OpenAIBackend


class SseServer:
    """Answers every request with a few SSE text events and then (``hang``) keeps the stream open."""

    def __init__(self, words: list[str], *, hang: bool) -> None:
        self.words = words
        self.hang = hang
        self.bodies: list[dict[str, object]] = []
        self.hung_up = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += await stream.receive_some(65536)
        self.bodies.append(json.loads(body))
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for word in self.words:
            event = json.dumps({"model": "tcp-1", "choices": [{"index": 0, "delta": {"content": word}}]})
            await self._chunk(stream, f"data: {event}\n\n".encode())
            await trio.sleep(0.01)
        if not self.hang:
            await self._chunk(stream, b"data: [DONE]\n\n")
            await stream.send_all(b"0\r\n\r\n")
            return
        # Keep the stream open until the client hangs up (receive_some returns b"" or fails).
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        self.hung_up.set()

    @staticmethod
    async def _chunk(stream: trio.SocketStream, payload: bytes) -> None:
        await stream.send_all(b"%x\r\n%s\r\n" % (len(payload), payload))


async def _serve(server: SseServer, nursery: trio.Nursery) -> OpenAIBackend:
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return OpenAIBackend(LLMConfig(provider="openai", base_url=f"http://127.0.0.1:{port}/v1", model="tcp-1"))


async def test_streams_over_a_real_socket() -> None:
    server = SseServer(["Hello", " over", " TCP"], hang=False)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            backend = await _serve(server, nursery)
            deltas: list[str] = []

            async def on_delta(text: str) -> None:
                deltas.append(text)

            messages = (ChatMessage(role="user", content="hi"),)
            completion = await backend.complete(
                messages, tools=(), params=LLMParams(max_tokens=5), on_delta=on_delta
            )
            assert deltas == ["Hello", " over", " TCP"] and completion.text == "Hello over TCP"
            assert server.bodies[0]["max_tokens"] == 5 and server.bodies[0]["stream"] is True
            await backend.aclose()
            nursery.cancel_scope.cancel()


async def test_cancel_closes_the_connection() -> None:
    server = SseServer(["one", " two"], hang=True)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            backend = await _serve(server, nursery)
            got_two = trio.Event()

            async def on_delta(text: str) -> None:
                if text == " two":
                    got_two.set()

            scope = trio.CancelScope()

            async def generate() -> None:
                with scope:
                    messages = (ChatMessage(role="user", content="hi"),)
                    await backend.complete(messages, tools=(), params=None, on_delta=on_delta)

            nursery.start_soon(generate)
            await got_two.wait()
            scope.cancel()
            await server.hung_up.wait()  # the server saw the client go away
            await backend.aclose()
            nursery.cancel_scope.cancel()

"""Bus throughput: messages/s end to end (publish N, receive all N), QoS 0 and 1.

    python benchmarks/bus.py [--messages N] [--json PATH]

Rows:

- ``bus in-process``: trioworks.bus over InProcessTransport (envelope + contract encode/decode,
  per-subscription queue and handler task included).
- ``bus mqtt``: trioworks.bus over MqttTransport against a local mosquitto started here.
- ``moat client``: a plain moat-lib-mqtt ``AsyncMQTTClient`` publish loop and subscription,
  raw bytes, no envelope: the floor cost of MQTT itself on this machine.

QoS 1 publishes one message at a time and waits for its PUBACK (as a service does), so it
measures round trips, not pipelining. The MQTT rows are skipped when mosquitto is not installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from trioworks.bus import (
    Bus,
    InProcessBroker,
    InProcessTransport,
    LLMStreamDelta,
    Message,
    MqttTransport,
    Overflow,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_mosquitto() -> tuple[subprocess.Popen[bytes], str] | None:
    program = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if program is None:
        return None
    port = _free_port()
    conf = Path(tempfile.mkdtemp(prefix="bus-bench-")) / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
    )
    proc = subprocess.Popen([program, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


async def _bus_rate(make_transport: Callable[[str], object], n: int, qos: int) -> float:
    done = trio.Event()
    count = 0

    async def handler(message: Message) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    async with trio.open_nursery() as nursery:
        sub_bus = Bus(make_transport("bench-sub"), source="bench-sub")  # type: ignore[arg-type]
        pub_bus = Bus(make_transport("bench-pub"), source="bench-pub")  # type: ignore[arg-type]
        await nursery.start(sub_bus.run)
        await nursery.start(pub_bus.run)
        await sub_bus.subscribe("llm/stream", handler, capacity=1024, overflow=Overflow.BLOCK, qos=qos)
        start = time.perf_counter()
        for seq in range(n):
            await pub_bus.publish("llm/stream", LLMStreamDelta(id="r", seq=seq, delta="word "), qos=qos)
        await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return n / elapsed


async def _moat_rate(url: str, n: int, qos: int) -> float:
    from moat.lib.mqtt import QoS
    from moat.lib.mqtt.async_client import AsyncMQTTClient

    host, port = url.removeprefix("mqtt://").split(":")
    level = QoS.AT_LEAST_ONCE if qos else QoS.AT_MOST_ONCE
    done = trio.Event()

    async with (
        AsyncMQTTClient(host, int(port), client_id="moat-sub") as sub_client,
        AsyncMQTTClient(host, int(port), client_id="moat-pub") as pub_client,
        trio.open_nursery() as nursery,
    ):
        async with sub_client.subscribe("bench/raw", qos=level) as subscription:

            async def consume() -> None:
                count = 0
                async for _ in subscription:
                    count += 1
                    if count == n:
                        done.set()
                        return

            nursery.start_soon(consume)
            payload = b'{"seq": 0, "delta": "word "}'
            start = time.perf_counter()
            for _ in range(n):
                await pub_client.publish("bench/raw", payload, qos=level)
            await done.wait()
            return n / (time.perf_counter() - start)
    raise AssertionError("unreachable")


async def _run(n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    async def row(name: str, qos: int, measure: Awaitable[float]) -> None:
        rate = await measure
        rows.append({"system": name, "qos": qos, "messages": n, "msg_per_s": round(rate)})
        print(f"{name:<16} QoS {qos}: {rate:>9,.0f} msg/s", flush=True)

    def in_process(broker: InProcessBroker) -> Callable[[str], object]:
        return lambda cid: InProcessTransport(broker, client_id=cid)

    for qos in (0, 1):
        await row("bus in-process", qos, _bus_rate(in_process(InProcessBroker()), n, qos))
    started = _start_mosquitto()
    if started is None:
        print("mosquitto not installed: MQTT rows skipped", file=sys.stderr)
        return rows
    proc, url = started
    try:
        for qos in (0, 1):
            await row("bus mqtt", qos, _bus_rate(lambda cid: MqttTransport(url, client_id=cid), n, qos))
            await row("moat client", qos, _moat_rate(url, n, qos))
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {args.messages} messages per row")
    rows = trio.run(_run, args.messages)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

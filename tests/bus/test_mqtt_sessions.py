"""MQTT 5 sessions: a client that comes back later than its publishers still gets the QoS 1
messages sent meanwhile (the broker queued them in its session). Real mosquitto, real time."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap

import pytest
import trio
from bus_helpers import Collector

from _services import PersistentMosquitto
from trioworks.bus import Bus, MqttTransport
from trioworks.core import RetryPolicy

FAST = RetryPolicy(max_attempts=1000, base_delay=0.05, factor=2.0, max_delay=0.2, jitter=0)
# 3 s: room for the broker to come back and the others to reconnect first, even on a loaded machine.
SLOW = RetryPolicy(max_attempts=1000, base_delay=3.0, factor=1.0, max_delay=3.0, jitter=0)


@pytest.mark.parametrize("session_expiry", [300, 0])
async def test_qos1_sent_before_a_subscriber_is_back_reaches_it_after_a_broker_restart(
    persistent_mosquitto: PersistentMosquitto, nursery: trio.Nursery, session_expiry: int
) -> None:
    url = persistent_mosquitto.url
    # The subscriber reconnects 3 s after losing the broker; the publisher at once.
    late = Bus(
        MqttTransport(url, client_id="late", reconnect=SLOW, session_expiry=session_expiry), source="late"
    )
    early = Bus(MqttTransport(url, client_id="early", reconnect=FAST), source="early")
    await nursery.start(late.run)
    await nursery.start(early.run)
    got = Collector()
    await late.subscribe("test/requests", got)
    await trio.to_thread.run_sync(persistent_mosquitto.wait_for_save)  # the session as it is now
    await trio.to_thread.run_sync(functools.partial(persistent_mosquitto.restart, down_for=0.2))
    with trio.fail_after(20):
        await early.transport.connections.wait_value(lambda n: n >= 2)  # type: ignore[attr-defined]
        assert late.transport.connections.value == 1  # type: ignore[attr-defined]  # still away
        for n in range(5):
            await early.publish("test/requests", {"n": n}, qos=1)
        await late.transport.connections.wait_value(lambda n: n >= 2)  # type: ignore[attr-defined]
        if session_expiry:
            await got.wait_for(5)
    await trio.sleep(0.5)
    if session_expiry:
        assert sorted({m.data["n"] for m in got.messages}) == [0, 1, 2, 3, 4]
    else:  # a clean session every time: what was sent while it was away is lost to it
        assert got.messages == []


async def test_a_clean_shutdown_ends_the_session(
    persistent_mosquitto: PersistentMosquitto, nursery: trio.Nursery
) -> None:
    url = persistent_mosquitto.url
    publisher = Bus(MqttTransport(url, client_id="pub", reconnect=FAST), source="pub")
    await nursery.start(publisher.run)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            first = Bus(MqttTransport(url, client_id="svc", reconnect=FAST), source="svc")
            await inner.start(first.run)
            await first.subscribe("test/after", Collector())
            scope.cancel()
    await publisher.publish("test/after", {"n": 1}, qos=1)  # nobody's session keeps it
    again = Bus(MqttTransport(url, client_id="svc", reconnect=FAST), source="svc")
    await nursery.start(again.run)
    got = Collector()
    await again.subscribe("test/after", got)
    await publisher.publish("test/after", {"n": 2}, qos=1)
    with trio.fail_after(5):
        await got.wait_for(1)
    await trio.sleep(0.3)
    assert [m.data["n"] for m in got.messages] == [2]


def test_session_expiry_is_checked() -> None:
    with pytest.raises(ValueError, match="session_expiry"):
        MqttTransport("mqtt://127.0.0.1:1883", client_id="x", session_expiry=-1)


CRASHER = textwrap.dedent(
    """
    import sys, trio
    from trioworks.bus import Bus, MqttTransport

    async def main():
        bus = Bus(MqttTransport(sys.argv[1], client_id="svc"), source="svc")
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            await bus.subscribe("test/old", lambda message: trio.lowlevel.checkpoint())
            print("subscribed", flush=True)
            await trio.sleep_forever()

    trio.run(main)
    """
)


async def test_a_session_left_by_a_crashed_process_is_not_resumed_by_the_next(
    persistent_mosquitto: PersistentMosquitto, nursery: trio.Nursery
) -> None:
    # Resumed, the dead process's session would keep its subscription "test/old" under
    # subscription id 1, which the new process gives to "test/new": old messages would reach
    # the new subscription.
    url = persistent_mosquitto.url
    publisher = Bus(MqttTransport(url, client_id="pub", reconnect=FAST), source="pub")
    await nursery.start(publisher.run)
    with trio.fail_after(20):
        async with trio.open_nursery() as child:
            proc = await child.start(
                functools.partial(
                    trio.run_process,
                    [sys.executable, "-c", CRASHER, url],
                    stdout=subprocess.PIPE,
                    check=False,
                )
            )
            said = b""
            while not said.endswith(b"\n"):
                said += await proc.stdout.receive_some()
            proc.kill()  # no DISCONNECT: the broker keeps its session (300 s)
        again = Bus(MqttTransport(url, client_id="svc", reconnect=FAST), source="svc")
        await nursery.start(again.run)
        got = Collector()
        await again.subscribe("test/new", got)
        await publisher.publish("test/old", {"n": "for the dead process"}, qos=1)
        await publisher.publish("test/new", {"n": "for the new one"}, qos=1)
        await got.wait_for(1)
    await trio.sleep(0.3)
    assert [(m.topic, m.data["n"]) for m in got.messages] == [("test/new", "for the new one")]

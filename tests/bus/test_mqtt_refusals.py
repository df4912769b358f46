"""A publish the broker refuses raises MqttError once; it is never sent again and again (issue 10,
case 9). Against a real mosquitto with an ACL and a size limit; real time, seconds-scale bounds."""

from __future__ import annotations

import pytest
import trio

from _services import RefusingMosquitto
from trioworks.bus import Bus, MqttError, MqttTransport, RawMessage
from trioworks.core import RetryPolicy

FAST_RECONNECT = RetryPolicy(max_attempts=1000, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)


async def _transport(broker: RefusingMosquitto, nursery: trio.Nursery) -> MqttTransport:
    transport = MqttTransport(broker.url, client_id="refused", reconnect=FAST_RECONNECT)
    await nursery.start(transport.run)
    return transport


async def test_a_publish_denied_by_the_acl_raises_naming_topic_and_reason(
    refusing_mosquitto: RefusingMosquitto, nursery: trio.Nursery
) -> None:
    transport = await _transport(refusing_mosquitto, nursery)
    with trio.fail_after(10), pytest.raises(MqttError, match=r"'refused/x'.*NOT_AUTHORIZED"):
        await transport.publish(RawMessage("refused/x", b"{}", qos=1))
    with trio.fail_after(10):
        await transport.publish(RawMessage("allowed/x", b"{}", qos=1))
    snap = transport.metrics.snapshot()
    assert (snap["mqtt.publish_refused"], snap["mqtt.connects"]) == (1, 1)


async def test_a_publish_over_the_broker_size_limit_raises_instead_of_being_resent_forever(
    refusing_mosquitto: RefusingMosquitto, nursery: trio.Nursery
) -> None:
    # message_size_limit: mosquitto answers PUBACK 0x95, a code MQTT 5 does not allow there (the
    # protocol library cannot decode it, so the connection ends). max_packet_size: the broker
    # says its limit in CONNACK and disconnects a client that sends more. Before the fix, both
    # ended the connection, the publish was resent on the next one, and so on forever.
    transport = await _transport(refusing_mosquitto, nursery)
    with trio.fail_after(20), pytest.raises(MqttError, match=r"'allowed/big'") as info:
        await transport.publish(RawMessage("allowed/big", b"x" * 3000, qos=1))
    if refusing_mosquitto.size_setting == "max_packet_size":
        assert "over the broker's maximum of 2000 bytes" in str(info.value)
        assert transport.metrics.snapshot()["mqtt.connects"] == 1  # refused before sending
    else:
        assert "ended the connection 3 times in a row" in str(info.value)
    with trio.fail_after(10):
        await transport.publish(RawMessage("allowed/small", b"x" * 100, qos=1))  # still serving
    assert transport.metrics.snapshot()["mqtt.publish_refused"] == 1


async def test_the_bus_reports_a_refused_publish_to_its_caller(
    refusing_mosquitto: RefusingMosquitto, nursery: trio.Nursery
) -> None:
    bus = Bus(MqttTransport(refusing_mosquitto.url, client_id="svc", reconnect=FAST_RECONNECT), source="svc")
    await nursery.start(bus.run)
    with trio.fail_after(10), pytest.raises(MqttError, match=r"'refused/topic'.*NOT_AUTHORIZED"):
        await bus.publish("refused/topic", {"n": 1})

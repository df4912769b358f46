"""The message bus for the voice services: one interface, in-process or MQTT.

- :class:`Bus`: typed publish (envelope ``{id, type, ts, source, data}``), subscribe with a
  bounded queue, an :class:`Overflow` policy and its own supervised handler task(s) per
  subscription, and :meth:`Bus.request` by correlation id.
- Transports: :class:`InProcessTransport` over an :class:`InProcessBroker` (the embedded
  default) and :class:`MqttTransport` (mosquitto; reconnects with backoff and re-subscribes).
- :class:`Service`: the one lifecycle of a voice service: its :class:`Route` handlers and
  background :class:`Task` s supervised in one nursery, retained ``system/health/<service>``,
  :exc:`ServiceFailed` past the restart intensity, ordered shutdown (the bus outlives the
  routes and tasks) and cleanups. A route's ``on_malformed`` hook lets a service answer a
  request that breaks its contract (:func:`salvage` reads the ids such a request still has).
- The contracts: one attrs class per topic of the spec (``TOPICS`` maps topics to them).
"""

from ._bus import DEFAULT_MAX_PAYLOAD, Bus
from ._codec import (
    BARE_SOURCE,
    MAX_DEPTH,
    TOPICS,
    Envelope,
    Message,
    Salvage,
    TopicSpec,
    converter,
    decode,
    encode,
    new_id,
    salvage,
    spec_for,
)
from ._contracts import *  # noqa: F403  # the contract classes, listed in _contracts.__all__
from ._contracts import __all__ as _contract_names
from ._dispatch import Handler, MalformedHandler, Overflow, Subscription
from ._errors import BusError, ContractError, EnvelopeError, PayloadTooLarge, RequestTimeout, TopicError
from ._memory import InProcessBroker, InProcessTransport
from ._mqtt import MqttError, MqttTransport
from ._service import Route, Service, ServiceFailed, Task, run_service
from ._topics import matches, validate_filter, validate_topic
from ._transport import RawMessage, Sink, Transport

__all__ = [
    "BARE_SOURCE",
    "DEFAULT_MAX_PAYLOAD",
    "MAX_DEPTH",
    "TOPICS",
    "Bus",
    "BusError",
    "ContractError",
    "Envelope",
    "EnvelopeError",
    "Handler",
    "InProcessBroker",
    "InProcessTransport",
    "MalformedHandler",
    "Message",
    "MqttError",
    "MqttTransport",
    "Overflow",
    "PayloadTooLarge",
    "RawMessage",
    "RequestTimeout",
    "Route",
    "Salvage",
    "Service",
    "ServiceFailed",
    "Sink",
    "Subscription",
    "Task",
    "TopicError",
    "TopicSpec",
    "Transport",
    "converter",
    "decode",
    "encode",
    "matches",
    "new_id",
    "run_service",
    "salvage",
    "spec_for",
    "validate_filter",
    "validate_topic",
    *_contract_names,
]

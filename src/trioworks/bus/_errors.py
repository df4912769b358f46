"""Typed errors of the message bus; each names the topic (and field) it is about."""

from __future__ import annotations

__all__ = [
    "BusError",
    "ContractError",
    "EnvelopeError",
    "PayloadTooLarge",
    "RequestTimeout",
    "TopicError",
]


class BusError(Exception):
    """Base class of every error raised by :mod:`trioworks.bus`."""


class TopicError(BusError, ValueError):
    """A topic name or topic filter is malformed (empty level, misplaced wildcard, ...)."""

    def __init__(self, topic: str, problem: str) -> None:
        super().__init__(topic, problem)
        self.topic = topic
        self.problem = problem

    def __str__(self) -> str:
        return f"bad topic {self.topic!r}: {self.problem}"


class EnvelopeError(BusError, ValueError):
    """A message on ``topic`` is not a valid envelope ``{id, type, ts, source, data}``.

    ``problems`` lists each offending field with what was expected, e.g.
    ``"$.data.top_k: must be <= 50"``.
    """

    def __init__(self, topic: str, problems: list[str]) -> None:
        super().__init__(topic, problems)
        self.topic = topic
        self.problems = problems

    def __str__(self) -> str:
        return f"malformed envelope on {self.topic!r}: " + "; ".join(self.problems)


class ContractError(BusError, TypeError):
    """Outgoing data does not match the contract of its topic."""

    def __init__(self, topic: str, problem: str) -> None:
        super().__init__(topic, problem)
        self.topic = topic
        self.problem = problem

    def __str__(self) -> str:
        return f"contract violation on {self.topic!r}: {self.problem}"


class PayloadTooLarge(BusError, ValueError):
    """An encoded message is larger than the bus's ``max_payload``."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(topic, size, limit)
        self.topic = topic
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return f"message on {self.topic!r} is {self.size} bytes, over the {self.limit}-byte limit"


class RequestTimeout(BusError, TimeoutError):
    """No reply with the request's correlation id arrived on ``reply_topic`` in time."""

    def __init__(self, topic: str, reply_topic: str, request_id: str, timeout: float) -> None:
        super().__init__(topic, reply_topic, request_id, timeout)
        self.topic = topic
        self.reply_topic = reply_topic
        self.request_id = request_id
        self.timeout = timeout

    def __str__(self) -> str:
        return (
            f"no reply on {self.reply_topic!r} to request {self.request_id!r} "
            f"on {self.topic!r} within {self.timeout} s"
        )

"""MQTT topic names and filters: validation and wildcard matching (``+`` one level, ``#`` the rest)."""

from __future__ import annotations

from ._errors import TopicError

__all__ = ["matches", "validate_filter", "validate_topic"]


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic *name* (for publishing), else raise TopicError."""
    if not isinstance(topic, str) or not topic:
        raise TopicError(str(topic), "a topic name must be a non-empty string")
    if "+" in topic or "#" in topic:
        raise TopicError(topic, "wildcards '+' and '#' are only allowed in subscriptions")
    if "\0" in topic:
        raise TopicError(topic, "NUL is not allowed in a topic")
    return topic


def validate_filter(pattern: str) -> str:
    """Return ``pattern`` if it is a valid topic *filter* (for subscribing), else raise TopicError."""
    if not isinstance(pattern, str) or not pattern:
        raise TopicError(str(pattern), "a topic filter must be a non-empty string")
    if "\0" in pattern:
        raise TopicError(pattern, "NUL is not allowed in a topic")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise TopicError(pattern, "'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise TopicError(pattern, "'+' must be a whole level")
    return pattern


def matches(pattern: str, topic: str) -> bool:
    """Whether topic name ``topic`` matches filter ``pattern`` (MQTT 5 rules).

    ``a/#`` matches ``a`` itself; a leading wildcard never matches a ``$``-topic.
    """
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    p_levels = pattern.split("/")
    t_levels = topic.split("/")
    for i, p in enumerate(p_levels):
        if p == "#":
            return True
        if i >= len(t_levels):
            return False
        if p != "+" and p != t_levels[i]:
            return False
    return len(p_levels) == len(t_levels)

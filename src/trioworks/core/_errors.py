"""The real error inside exception groups: the one unwrapping every caller shares.

Trio wraps whatever a nursery's children raise in an :class:`ExceptionGroup`, once per nursery,
so an error raised three nurseries deep arrives as a group in a group in a group. A caller that
acts on one kind of error (a restart policy giving up, a service that failed) or reports an
error to a person wants the leaf, not the wrapping. These helpers find it with
:meth:`BaseExceptionGroup.subgroup` and :meth:`~BaseExceptionGroup.split`, in the order the
groups hold their exceptions (depth first), and never modify the group they are given.
"""

from __future__ import annotations

from typing import TypeVar

import trio

__all__ = ["find_error", "leaf_errors", "single_error"]

E = TypeVar("E", bound=BaseException)


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``'s nested groups, depth first; ``[exc]`` when it is no group."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]


def find_error(exc: BaseException, kind: type[E] | tuple[type[E], ...]) -> E | None:
    """The first exception of ``kind`` that is ``exc`` itself or a leaf of its nested groups.

    Groups are not leaves: ``find_error(group, Exception)`` is the group's first non-group
    exception, not the group. None when there is no such exception.
    """
    if isinstance(exc, kind) and not isinstance(exc, BaseExceptionGroup):
        return exc
    if not isinstance(exc, BaseExceptionGroup):
        return None
    matched = exc.subgroup(lambda e: isinstance(e, kind) and not isinstance(e, BaseExceptionGroup))
    if matched is None:
        return None
    first = leaf_errors(matched)[0]
    assert isinstance(first, kind)  # what subgroup kept
    return first


def single_error(exc: BaseException) -> BaseException:
    """The one real error in ``exc``: its only leaf once :class:`trio.Cancelled` leaves are set aside.

    ``exc`` itself when it is no group, or when its groups hold several real errors (the caller
    decides how to report more than one) or nothing but ``Cancelled``. The leaf keeps its own
    traceback, ``__cause__`` and ``__context__``.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    _, rest = exc.split(trio.Cancelled)
    leaves = leaf_errors(rest) if rest is not None else []
    return leaves[0] if len(leaves) == 1 else exc

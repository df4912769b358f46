"""Tests for the exception-group helpers: find_error, leaf_errors, single_error."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trioworks.core import RestartIntensityExceeded, find_error, leaf_errors, single_error


def _cancelled() -> trio.Cancelled:
    # Cancelled has no public constructor; catch a real one.
    caught: list[trio.Cancelled] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(main)
    return caught[0]


def nest(exc: BaseException, depth: int) -> BaseException:
    for _ in range(depth):
        exc = BaseExceptionGroup("nursery", [exc])
    return exc


def test_a_plain_exception_is_its_own_single_error() -> None:
    error = ValueError("bad")
    assert single_error(error) is error
    assert leaf_errors(error) == [error]


@given(depth=st.integers(min_value=1, max_value=6))
def test_single_error_unwraps_any_depth_of_single_member_groups(depth: int) -> None:
    error = FileNotFoundError("the weights")
    assert single_error(nest(error, depth)) is error


def test_single_error_sets_cancelled_aside() -> None:
    error = OSError("broker gone")
    group = BaseExceptionGroup("n", [_cancelled(), ExceptionGroup("inner", [error]), _cancelled()])
    assert single_error(group) is error


def test_several_real_errors_leave_the_group_to_the_caller() -> None:
    group = ExceptionGroup("n", [ValueError("a"), ExceptionGroup("inner", [KeyError("b")])])
    assert single_error(group) is group
    assert [type(e) for e in leaf_errors(group)] == [ValueError, KeyError]


def test_a_group_of_nothing_but_cancelled_is_returned_whole() -> None:
    group = BaseExceptionGroup("n", [_cancelled()])
    assert single_error(group) is group


def test_find_error_returns_the_first_match_depth_first() -> None:
    first = RestartIntensityExceeded("memory", 3, 5.0)
    second = RestartIntensityExceeded("tts", 3, 5.0)
    group = ExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [first]), second])
    assert find_error(group, RestartIntensityExceeded) is first
    assert find_error(group, (KeyError, RestartIntensityExceeded)) is first
    assert find_error(group, KeyError) is None


def test_find_error_on_a_plain_exception() -> None:
    error = KeyboardInterrupt()
    assert find_error(error, KeyboardInterrupt) is error
    assert find_error(error, ValueError) is None


def test_find_error_never_returns_a_group() -> None:
    leaf = ValueError("leaf")
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [leaf])])
    assert find_error(group, Exception) is leaf


def test_the_group_is_left_as_it_was() -> None:
    leaf = ValueError("leaf")
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [leaf]), KeyError("k")])
    find_error(group, ValueError)
    single_error(group)
    assert leaf_errors(group) == [leaf, group.exceptions[1]]
    assert leaf.__traceback__ is None  # nothing was raised or re-wrapped on the way


@pytest.mark.parametrize("depth", [1, 3])
async def test_what_a_nested_nursery_raises_unwraps_to_the_real_error(depth: int) -> None:
    async def fail() -> None:
        raise FileNotFoundError("the weights are not installed")

    async def nested(level: int) -> None:
        async with trio.open_nursery() as nursery:
            if level == 1:
                nursery.start_soon(fail)
            else:
                nursery.start_soon(nested, level - 1)
            await trio.sleep_forever()  # cancelled when the child fails

    with pytest.raises(BaseExceptionGroup) as info:
        await nested(depth)
    error = single_error(info.value)
    assert isinstance(error, FileNotFoundError)
    assert str(error) == "the weights are not installed"

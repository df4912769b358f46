"""Tests for the core Correlator (waiter table keyed by correlation id)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trioworks.core import Correlator, DuplicateCorrelationId


async def test_resolve_wakes_the_waiter_and_removes_it(autojump_clock: trio.testing.MockClock) -> None:
    table: Correlator[str, int] = Correlator()
    async with trio.open_nursery() as nursery:
        with table.expect("a") as waiter:
            assert "a" in table
            nursery.start_soon(lambda: _resolve_later(table, "a", 42))
            assert await waiter.wait() == 42
        assert len(table) == 0


async def _resolve_later(table: Correlator[str, int], key: str, value: int) -> None:
    await trio.sleep(1)
    assert table.resolve(key, value)


async def test_duplicate_id_is_an_error_and_keeps_the_first_waiter() -> None:
    table: Correlator[str, int] = Correlator()
    with table.expect("a") as first:
        with pytest.raises(DuplicateCorrelationId, match="'a'"), table.expect("a"):
            pass  # pragma: no cover - never entered
        assert table.resolve("a", 1)
        assert await first.wait() == 1
    assert len(table) == 0


async def test_cancelled_wait_leaves_no_waiter(autojump_clock: trio.testing.MockClock) -> None:
    table: Correlator[str, int] = Correlator()
    with trio.move_on_after(5) as scope, table.expect("a") as waiter:
        await waiter.wait()
    assert scope.cancelled_caught
    assert len(table) == 0
    assert not table.resolve("a", 1)  # a late reply finds nobody


async def test_unknown_and_second_reply_are_reported_not_raised() -> None:
    table: Correlator[str, int] = Correlator()
    assert not table.resolve("nobody", 1)
    with table.expect("a") as waiter:
        assert table.resolve("a", 1)
        assert not table.resolve("a", 2)  # first answer wins
        assert not table.fail("a", RuntimeError("late"))
        assert await waiter.wait() == 1


async def test_fail_and_fail_all_raise_in_the_waiters() -> None:
    table: Correlator[int, str] = Correlator()
    with table.expect(1) as one, table.expect(2) as two, table.expect(3) as three:
        assert table.fail(1, KeyError("one"))
        assert table.resolve(3, "ok")
        lost = ConnectionError("lost")
        assert table.fail_all(lost) == 1  # only 2 was still open
        with pytest.raises(KeyError):
            await one.wait()
        with pytest.raises(ConnectionError, match="lost"):
            await two.wait()
        assert await three.wait() == "ok"
        assert two.done
    assert len(table) == 0

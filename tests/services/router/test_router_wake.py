"""The router's wake window (``RouterConfig.wake_required``), on the autojump clock.

The rig's fake llm streams a 12-character delta every 0.1 s and the fake tts speaks 20 ms per
character, so the echo reply's turn takes a few seconds of virtual time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from router_helpers import Rig, running

from trioworks.bus import TtsSay, WakeEvent
from trioworks.services.router import RouterConfig, RouterConfigError, WakeWindow

GATED = RouterConfig(wake_required=True, wake_window=8.0, wake_ack=())  # the window alone


async def settle(seconds: float = 1.0) -> None:
    await trio.sleep(seconds)  # virtual: every task has done what it will do with what it has


def outside(rig: Rig) -> int:
    return rig.router.bus.metrics.counter("router.transcripts.outside_window").value


async def test_by_default_every_transcript_starts_a_turn(autojump_clock: trio.testing.MockClock) -> None:
    async with running() as rig:
        assert RouterConfig().wake_required is False
        await rig.hear("no wake word needed")
        await settle(100)  # far past any window
        await rig.hear("nor now")
        with trio.fail_after(60):
            await rig.router.wait_turns(2)
    assert [r.text for r in rig.llm.requests] == ["no wake word needed", "nor now"]
    assert outside(rig) == 0


async def test_without_the_wake_word_a_transcript_is_ignored(autojump_clock: trio.testing.MockClock) -> None:
    async with running(config=GATED) as rig:
        await rig.hear("talking to someone else")
        await settle()
        assert rig.llm.requests == [] and outside(rig) == 1
        await rig.wake()
        await settle(7)  # 7 s + the 1 s above... still inside 8 s of the wake word
        await rig.hear("what time is it")
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
    assert [r.text for r in rig.llm.requests] == ["what time is it"]
    assert outside(rig) == 1


async def test_the_window_closes_after_its_length(autojump_clock: trio.testing.MockClock) -> None:
    async with running(config=GATED) as rig:
        await rig.wake()
        await settle(8.5)
        await rig.hear("too late")
        await settle()
    assert rig.llm.requests == [] and outside(rig) == 1
    assert rig.router.wake.closes_at is None and not rig.router.wake.is_open


async def test_each_turn_reopens_the_window_so_the_conversation_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(config=GATED) as rig:
        await rig.wake()
        await rig.hear("first question")
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
        ended = trio.current_time()
        assert ended > 2  # the turn took a while: the wake word's own 8 s no longer matter
        assert rig.router.wake.closes_at == pytest.approx(ended + 8.0)
        await settle(7)
        await rig.hear("and a follow-up")  # no wake word: within 8 s of the reply's end
        with trio.fail_after(60):
            await rig.router.wait_turns(2)
        await settle(9)
        await rig.hear("much later")
        await settle()
    first, second = rig.llm.requests
    assert (first.text, second.text) == ("first question", "and a follow-up")
    assert [m.content for m in second.conversation_history if m.role == "user"] == ["first question"]
    assert outside(rig) == 1  # "much later"


async def test_a_long_turn_keeps_the_window_open_past_its_length(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: " ".join(["A long answer, spoken slowly."] * 20), GATED) as rig:
        await rig.wake()
        await rig.hear("tell me a lot")
        with trio.fail_after(60):
            await rig.wait_for("tts/say")
        await settle(10)  # past the wake word's 8 s, the turn still running
        assert rig.router.current_turn is not None and rig.router.wake.is_open
        await rig.hear("stop, another question")  # replaces the running turn, as without the window
        with trio.fail_after(120):
            await rig.router.wait_turns(2)
    assert [e.ended for e in rig.router.history.exchanges] == ["superseded", "done"]
    assert outside(rig) == 0


@pytest.mark.parametrize("event", ["timeout", "cancelled"])
async def test_timeout_and_cancelled_close_the_window(
    autojump_clock: trio.testing.MockClock, event: str
) -> None:
    async with running(config=GATED) as rig:
        await rig.wake()
        await settle()
        await rig.wake(event)
        await settle()
        await rig.hear("after the wake service gave up")
        await settle()
        assert rig.llm.requests == [] and outside(rig) == 1
        # Closed while a turn runs: the turn's end does not reopen it.
        await rig.wake()
        await rig.hear("a question")
        with trio.fail_after(60):
            await rig.wait_for("tts/say")
        await rig.wake(event)
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
        await rig.hear("not a follow-up")
        await settle()
    assert [r.text for r in rig.llm.requests] == ["a question"]
    assert outside(rig) == 2


async def test_a_barge_in_opens_the_window(autojump_clock: trio.testing.MockClock) -> None:
    async with running(config=GATED) as rig:
        await rig.interrupt()  # the user talks over the assistant: what they say next counts
        await settle()
        await rig.hear("wait, one more thing")
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
    assert [r.text for r in rig.llm.requests] == ["wait, one more thing"]


async def test_wake_window_alone(autojump_clock: trio.testing.MockClock) -> None:
    window = WakeWindow(required=True, length=2.0)
    assert not window.is_open
    window.open()
    await trio.sleep(1.5)
    window.open()  # extends from now
    await trio.sleep(1.5)
    assert window.is_open and window.closes_at == pytest.approx(trio.current_time() + 0.5)
    window.turn_started()
    await trio.sleep(10)
    assert window.is_open and window.closes_at is None
    window.turn_ended()
    assert window.closes_at == pytest.approx(trio.current_time() + 2.0)
    window.close()
    assert not window.is_open
    assert WakeWindow(required=False, length=1.0).is_open


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"wake_window": 0}, "wake_window"),
        ({"wake_window": "8"}, "wake_window"),
        ({"wake_required": 1}, "wake_required"),
    ],
)
def test_wake_settings_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RouterConfigError, match=f"router config {field}:"):
        RouterConfig(**kwargs)  # type: ignore[arg-type]


async def test_a_wake_word_is_acknowledged_as_py_tars_does(autojump_clock: trio.testing.MockClock) -> None:
    """py-tars' router answers ``wake/event`` ``wake`` with a ``tts/say`` marked ``wake_ack``, its
    texts in turn (default "Hmm?", "Huh?", "Yes?"), under the event's ``tts_id`` when it has one."""
    async with running(config=RouterConfig(wake_required=True)) as rig:
        for _ in range(4):
            await rig.wake()
            await settle()
        await rig.client.publish("wake/event", WakeEvent(type="wake", tts_id="t-1"))
        await rig.wake("timeout")  # only "wake" is acknowledged
        with trio.fail_after(60):
            await rig.wait_for("tts/say", 5)
        await settle()
    says = [s for s in rig.on("tts/say") if isinstance(s, TtsSay)]
    assert [s.text for s in says] == ["Hmm?", "Huh?", "Yes?", "Hmm?", "Huh?"]
    assert all(s.wake_ack is True and s.lang == "en" and s.style == "neutral" for s in says)
    assert all(s.utt_id is not None and s.utt_id.startswith("wake-ack-") for s in says[:4])
    assert says[4].utt_id == "t-1"
    assert rig.llm.requests == []  # an acknowledgement is not a turn


async def test_the_acknowledgement_can_be_turned_off_or_changed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(config=RouterConfig(wake_ack=("Ready.",))) as rig:
        await rig.wake()
        await rig.wake()
        with trio.fail_after(60):
            await rig.wait_for("tts/say", 2)
    assert [s.text for s in rig.on("tts/say") if isinstance(s, TtsSay)] == ["Ready.", "Ready."]
    async with running(config=RouterConfig(wake_ack=())) as rig:
        await rig.wake()
        await settle()
    assert rig.on("tts/say") == []
    with pytest.raises(RouterConfigError, match=r"wake_ack\[1\]"):
        RouterConfig(wake_ack=("Yes?", " "))

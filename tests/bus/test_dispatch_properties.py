"""Hypothesis: under random interleavings, dispatch keeps order within a subscription and a
stuck handler never holds up another subscription. Each example runs on its own MockClock."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.bus import Bus, InProcessBroker, InProcessTransport, Message, Overflow

TOPICS = 3

delays = st.floats(min_value=0, max_value=0.5, allow_nan=False)
# Per topic: the gaps between its publications and how long its handler takes for each message.
streams = st.lists(st.lists(st.tuples(delays, delays), max_size=12), min_size=TOPICS, max_size=TOPICS)


@settings(max_examples=60, deadline=None)
@given(
    streams=streams,
    capacities=st.lists(st.integers(1, 4), min_size=TOPICS, max_size=TOPICS),
    stuck_overflow=st.sampled_from([Overflow.DROP_OLDEST, Overflow.DROP_NEWEST]),
)
def test_order_is_kept_and_a_stuck_subscription_blocks_nobody(
    streams: list[list[tuple[float, float]]], capacities: list[int], stuck_overflow: Overflow
) -> None:
    handled: dict[int, list[int]] = {t: [] for t in range(TOPICS)}
    stuck_seen: list[tuple[int, int]] = []

    async def main() -> None:
        bus = Bus(InProcessTransport(InProcessBroker()), source="prop")
        never = trio.Event()
        all_handled = trio.Event()
        if not any(streams):
            all_handled.set()

        def handler(topic: int):  # type: ignore[no-untyped-def]
            async def handle(message: Message) -> None:
                await trio.sleep(streams[topic][message.data["n"]][1])
                handled[topic].append(message.data["n"])
                if all(len(handled[t]) == len(streams[t]) for t in range(TOPICS)):
                    all_handled.set()

            return handle

        async def stuck(message: Message) -> None:
            stuck_seen.append((int(message.topic.rsplit("/", 1)[1]), message.data["n"]))
            await never.wait()  # a handler that never finishes (playback that hangs)

        async def publisher(topic: int) -> None:
            for n, (gap, _) in enumerate(streams[topic]):
                await trio.sleep(gap)
                await bus.publish(f"prop/{topic}", {"n": n})

        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            # Subscribed first, so it is offered every message before the others are.
            await bus.subscribe("prop/#", stuck, capacity=2, overflow=stuck_overflow, name="stuck")
            for topic in range(TOPICS):
                await bus.subscribe(
                    f"prop/{topic}", handler(topic), capacity=capacities[topic], name=f"t{topic}"
                )
            # Every non-stuck handler finishes in time although "stuck" never does.
            budget = sum(gap + work for stream in streams for gap, work in stream) + 1
            with trio.fail_after(budget):
                async with trio.open_nursery() as publishers:
                    for topic in range(TOPICS):
                        publishers.start_soon(publisher, topic)
                await all_handled.wait()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    for topic in range(TOPICS):
        assert handled[topic] == list(range(len(streams[topic])))
    for topic in range(TOPICS):
        seen = [n for t, n in stuck_seen if t == topic]
        assert seen == sorted(seen)  # drops, but never reorders

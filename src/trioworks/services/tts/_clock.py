"""The playback clock: how far a listener has heard, with pauses taken out."""

from __future__ import annotations

import trio
import trio_util

__all__ = ["PlaybackClock"]


class PlaybackClock:
    """Trio time minus the time spent paused; ``paused`` is an observable value.

    With ``realtime`` False the clock never makes anyone wait except while paused (output as
    fast as synthesis goes).
    """

    def __init__(self, *, realtime: bool = True) -> None:
        self.realtime = realtime
        self.paused = trio_util.AsyncBool(False)
        self._paused_total = 0.0
        self._pause_started = 0.0

    def pause(self) -> bool:
        """Stop the clock; False if it was already stopped. Not a checkpoint."""
        if self.paused.value:
            return False
        self._pause_started = trio.current_time()
        self.paused.value = True
        return True

    def resume(self) -> bool:
        """Restart the clock; False if it was running. Not a checkpoint."""
        if not self.paused.value:
            return False
        self._paused_total += trio.current_time() - self._pause_started
        self.paused.value = False
        return True

    def now(self) -> float:
        """Seconds of playback time (an arbitrary origin; compare differences only)."""
        current = trio.current_time()
        paused_now = current - self._pause_started if self.paused.value else 0.0
        return current - self._paused_total - paused_now

    async def wait_until(self, t: float) -> None:
        """Return once the clock is running and has reached ``t`` (any time, if not realtime).

        Always a checkpoint. A pause while waiting holds it until resumed.
        """
        await trio.lowlevel.checkpoint()
        while True:
            if self.paused.value:
                await self.paused.wait_value(False)
                continue
            now = trio.current_time()
            deadline = now + (t - self.now()) if self.realtime else now
            # Compare in Trio time: a remainder below its float resolution would otherwise
            # make a deadline equal to "now" and spin here (forever, under a virtual clock).
            if deadline <= now:
                return
            with trio.move_on_at(deadline):
                await self.paused.wait_value(True)

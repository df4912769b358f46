"""The router's wake window: when a transcript may start a turn (py-tars' wake gating).

Pure state over trio's clock (``trio.current_time()``, so tests drive it with a MockClock); no
tasks, no timers. A window that is not needed (``required`` False) is always open.
"""

from __future__ import annotations

import math

import trio

__all__ = ["WakeWindow"]


class WakeWindow:
    """Open for ``length`` seconds after a wake word, and for ``length`` seconds after each turn.

    - :meth:`open` (``wake/event`` ``wake`` or ``interrupt``): open until now + ``length``
      (never shortened);
    - :meth:`close` (``wake/event`` ``timeout`` or ``cancelled``): closed now, and the turn
      running at that moment does not reopen it when it ends;
    - :meth:`turn_started` / :meth:`turn_ended`: while a turn runs the window counts as open;
      when it ends, the window stays open ``length`` more seconds so the user can answer
      without the wake word again (unless it was closed during the turn).

    The router runs one turn at a time. Not thread-safe; no method checkpoints.
    """

    def __init__(self, *, required: bool, length: float) -> None:
        if length <= 0:
            raise ValueError(f"wake window: length must be > 0 s, got {length!r}")
        self.required = required
        self.length = length
        self._until = -math.inf
        self._in_turn = False
        self._closed_in_turn = False

    @property
    def is_open(self) -> bool:
        """Whether a transcript heard now may start a turn."""
        return not self.required or self._in_turn or trio.current_time() < self._until

    @property
    def closes_at(self) -> float | None:
        """The trio time the window closes (None: closed, or held open by a running turn)."""
        if self._in_turn or self._until <= trio.current_time():
            return None
        return self._until

    def open(self) -> None:
        self._until = max(self._until, trio.current_time() + self.length)

    def close(self) -> None:
        self._until = -math.inf
        self._closed_in_turn = self._in_turn

    def turn_started(self) -> None:
        self._in_turn = True
        self._closed_in_turn = False

    def turn_ended(self) -> None:
        self._in_turn = False
        if not self._closed_in_turn:
            self.open()

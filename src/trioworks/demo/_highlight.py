"""One claim the demo makes about what just ran: the type every section's judge returns."""

from __future__ import annotations

import attrs

__all__ = ["Highlight"]


@attrs.frozen
class Highlight:
    """One claim the demo makes about what just ran, and whether the run bears it out."""

    text: str
    ok: bool

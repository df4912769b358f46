"""``trioworks demo`` narrating the worker-and-server section (its run is judged in tests/demo)."""

from __future__ import annotations

import re

import pytest

from trioworks.cli import _demo

pytestmark = pytest.mark.slow

TOPICS = ("fan-out", "worker process", "wrote orders.csv", "the condition", "exactly once", "drained")


def test_demo_command_shows_the_section_and_exits_0(cli, monkeypatch) -> None:
    # Up to this section; the voice section has its own test (test_services_cli.py).
    monkeypatch.setattr(_demo, "SECTIONS", _demo.SECTIONS[:2])
    out = cli("demo")
    assert out.code == 0, out.out + out.err
    section = out.out.split("2. Worker and server", 1)[1]
    text = " ".join(section.split())  # rich wraps long lines at the console width
    assert "server on http://127.0.0.1:" in text and "deployed demo-orders v1" in text
    assert "count_primes process running" in text and "manual_review async skipped" in text
    assert "result: 2000 orders" in text
    highlights = section.split("\nhighlights\n", 1)[1]
    assert highlights.count("  ✓ ") == len(TOPICS) and "✗" not in highlights
    assert re.search(r"demo OK: (\d+)/\1 highlights", out.out)

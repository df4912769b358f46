"""Which workflow inputs a definition cannot run without.

A parameter whose whole template is a plain path into ``INPUT`` (``{{INPUT.topic}}``,
``{{ INPUT.order.items[0] }}``) needs that input: without it the activity's parameters cannot
be resolved, so the workflow is refused at start (422 naming the input) instead of failing an
activity later. A template with a filter, a test or an operator (``{{INPUT.x | default('y')}}``,
``{% if INPUT.x is defined %}``) may be written for a missing input, so it requires nothing.
"""

from __future__ import annotations

import re
from typing import Any

from .._models import Definition

__all__ = ["missing_inputs", "required_inputs"]

_PLAIN_INPUT = re.compile(r"\{\{\s*INPUT\.([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*|\[[^\]\[{}|]*\])*\s*\}\}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def required_inputs(definition: Definition) -> dict[str, str]:
    """``{input name: where it is needed}`` (the first parameter path that reads it)."""
    needed: dict[str, str] = {}
    for activity in definition.activities:
        for text in _strings(activity.parameters):
            if "{%" in text:  # a statement may guard the reference ({% if INPUT.x is defined %})
                continue
            for match in _PLAIN_INPUT.finditer(text):
                needed.setdefault(match.group(1), f"activity {activity.key!r}")
    return needed


def missing_inputs(definition: Definition, inputs: dict[str, Any]) -> dict[str, str]:
    """The required inputs ``inputs`` lacks, with where each is needed."""
    return {name: where for name, where in required_inputs(definition).items() if name not in inputs}

"""trioworks.client's DSL builds the same definitions as the original SDK (``kruxiaflow``).

Each SDK example of kruxiaflow-python (copied in the conformance suite) is run twice: with the
real ``kruxiaflow`` and with ``trioworks.client`` in its place; ``to_dict()`` must be equal.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import trioworks.client

EXAMPLES = sorted((Path(__file__).parent / "kruxia_conformance" / "sdk_examples").glob("[0-9]*.py"))


def _load(path: Path, sdk: types.ModuleType) -> dict[str, Any]:
    saved = sys.modules.get("kruxiaflow")
    sys.modules["kruxiaflow"] = sdk
    try:
        spec = importlib.util.spec_from_file_location(f"dsl_example_{path.stem}_{id(sdk)}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("kruxiaflow", None)
        else:
            sys.modules["kruxiaflow"] = saved
    (workflow,) = [v for v in vars(module).values() if isinstance(v, sdk.Workflow)]
    result: dict[str, Any] = workflow.to_dict()
    return result


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_same_definition_as_the_sdk(path: Path) -> None:
    kruxiaflow = pytest.importorskip("kruxiaflow")
    assert _load(path, trioworks.client) == _load(path, kruxiaflow)


def test_expressions_render_as_the_sdk() -> None:
    kruxiaflow = pytest.importorskip("kruxiaflow")
    for sdk in (kruxiaflow, trioworks.client):
        a = sdk.Activity(key="a", worker="std", activity_name="echo")
        rendered = str(
            sdk.and_((a["x"] > 0.8) | ~(a["y"] == "it's"), sdk.is_null(a["z"]), sdk.in_(a["k"], [1, 2]))
        )
        assert rendered == "{{(((a.x > 0.8) || (!(a.y == 'it\\'s'))) && (a.z == null)) && (a.k in [1, 2])}}"
        assert str(sdk.Input("n")) == "{{INPUT.n}}" and str(sdk.SecretRef("s")) == "{{SECRET.s}}"
        assert str(sdk.EnvRef("E")) == "${E}" and str(sdk.workflow.started_at) == "{{WORKFLOW.started_at}}"

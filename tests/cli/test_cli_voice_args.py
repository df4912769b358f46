"""The flags of ``trioworks services`` that are parsed by the CLI itself: ``--only``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioworks.cli._errors import CliError
from trioworks.cli._voice_args import parse_only
from trioworks.services import SERVICE_NAMES


@given(st.lists(st.sampled_from([*SERVICE_NAMES, " llm ", "tts "]), min_size=1))
def test_only_is_the_named_services_in_pipeline_order(names: list[str]) -> None:
    chosen = parse_only(",".join(names))
    assert chosen == tuple(n for n in SERVICE_NAMES if n in {x.strip() for x in names})


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
def test_only_refuses_any_other_name(name: str) -> None:
    if name in SERVICE_NAMES:
        return
    with pytest.raises(CliError, match=f"--only: unknown service '{name}'"):
        parse_only(f"llm,{name}")

"""Every service's settings error is a ``SettingError`` naming its service, the field and the problem."""

from __future__ import annotations

import pytest

from trioworks.services import (
    LLMConfig,
    MemoryConfig,
    RouterConfig,
    SettingError,
    SttConfig,
    TtsConfig,
    WakeConfig,
)


@pytest.mark.parametrize(
    ("make", "prefix", "field"),
    [
        (lambda: LLMConfig(tool_timeout=0), "llm config", "tool_timeout"),
        (lambda: MemoryConfig(db_path="m.db", ingest_batch=0), "memory config", "ingest_batch"),
        (lambda: RouterConfig(rag_k=True), "router config", "rag_k"),
        (lambda: SttConfig(partial_interval=0), "stt config", "partial_interval"),
        (lambda: TtsConfig(rate_wpm=10), "tts config", "rate_wpm"),
        (lambda: WakeConfig(threshold=2.0), "wake config", "threshold"),
    ],
)
def test_a_bad_value_names_the_service_and_the_field(make: object, prefix: str, field: str) -> None:
    with pytest.raises(SettingError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field
    assert str(info.value).startswith(f"{prefix} {field}: ")
    assert info.value.problem in str(info.value)

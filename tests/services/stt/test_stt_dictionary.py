"""The grammar and keyphrase recognisers load a dictionary of their own words only.

pocketsphinx reads its full 135,000-word dictionary in one call holding the GIL (~140 ms: a stall
of the Trio loop when the decoder is built in a thread); ``dictionary_of`` filters it in Python
first. These tests pin what the filtered dictionary holds and that it does not outlive the build.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pocketsphinx
import pytest

from trioworks.services._sphinx import dictionary_of
from trioworks.services.stt import SttConfig, SttConfigError
from trioworks.services.stt._recognizer import Recognizer

FULL = Path(pocketsphinx.Config()["dict"])


def _entries(path: Path, words: set[str]) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.split(" ", 1)[0].split("(", 1)[0] in words]


def test_dictionary_holds_every_pronunciation_of_the_words_and_nothing_else(tmp_path: Path) -> None:
    small = Path(dictionary_of(str(FULL), ["What is THE  weather", "the timer"]))
    try:
        lines = small.read_text().splitlines()
    finally:
        small.unlink()
    words = {"what", "is", "the", "weather", "timer"}
    assert lines == _entries(FULL, words)
    assert {line.split(" ", 1)[0] for line in lines} >= {"the", "the(2)", "weather", "timer"}
    assert {line.split(" ", 1)[0].split("(", 1)[0] for line in lines} == words


@pytest.mark.parametrize(
    "config",
    [
        SttConfig(phrases=("what is the weather in paris today", "play some music")),
        SttConfig(keyphrases=(("play some music", 1e-20),)),
    ],
    ids=["phrases", "keyphrases"],
)
def test_recognizer_uses_a_small_dictionary_and_removes_it(
    config: SttConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    recognizer = Recognizer(config)
    decoder = recognizer._decoder
    assert decoder.lookup_word("music") is not None
    assert decoder.lookup_word("zebra") is None  # in the full dictionary, not in this one
    assert list(tmp_path.iterdir()) == []


def test_unknown_word_still_named_and_no_file_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(
        SttConfigError, match=r"phrases\[1\]: words not in the pronunciation dictionary: zzqxv"
    ):
        Recognizer(SttConfig(phrases=("play some music", "play zzqxv")))
    assert list(tmp_path.iterdir()) == []


def test_a_custom_dictionary_is_used_as_given(tmp_path: Path) -> None:
    custom = tmp_path / "custom.dict"
    custom.write_text("\n".join(_entries(FULL, {"play", "some", "music", "zebra"})) + "\n")
    recognizer = Recognizer(SttConfig(phrases=("play some music",), dict_path=custom))
    assert recognizer._decoder.lookup_word("zebra") is not None

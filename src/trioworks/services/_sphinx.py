"""pocketsphinx helpers shared by the stt and wake services."""

from __future__ import annotations

import os
import tempfile

__all__ = ["dictionary_of"]


def dictionary_of(full_dict: str, phrases: list[str]) -> str:
    """A temporary pronunciation dictionary holding only the entries of the words in ``phrases``.

    Why: pocketsphinx reads its whole 135,000-word dictionary inside one call that holds the GIL
    (~140 ms here), which stalls the Trio loop when the decoder is built in a thread. Filtering
    the file here is plain Python, which lets the loop run between bytecodes, and the decoder
    then loads in ~10 ms. A word missing from the dictionary is missing from this one too, so
    the caller's unknown-word check is unchanged. The caller deletes the file.
    """
    words = {word for phrase in phrases for word in phrase.lower().split()}
    fd, path = tempfile.mkstemp(suffix=".dict", text=True)
    with os.fdopen(fd, "w", encoding="utf-8") as out, open(full_dict, encoding="utf-8") as entries:
        # Lines are "word phones..." or "word(2) phones..." for alternative pronunciations.
        out.writelines(line for line in entries if line.split(" ", 1)[0].split("(", 1)[0] in words)
    return path

"""The wake word benchmark (issue 14): false-accept and false-reject rates of the wake service's
keyphrase spotter on espeak-ng speech.

    python benchmarks/wake.py [--quick] [--phrase "hey tars"] [--words "tars=T AA R Z;tars(2)=T AA Z"]
                              [--thresholds 1e-40,1e-30,...] [--verbose] [--json PATH]

``--quick`` (for iterating, a few minutes): one speed (140 wpm) and the default threshold
only, 80 clips instead of 160; the per-voice split is the same.

Each clip is one sentence spoken by espeak-ng (several voices and speeds), padded with silence,
and once more with white noise mixed in by sox. Positives say the wake phrase (alone, before a
request, after a word); negatives do not (ordinary requests, and near misses: "hey there",
"guitars", "stars"). For each threshold the spotter (:class:`trioworks.services.wake.Spotter`,
the service's own, fed 100 ms chunks) hears every clip:

- false-reject rate: positives in which the phrase was not heard;
- false-accept rate: negatives in which it was heard (at least once).

Needs espeak-ng, sox and pocketsphinx. CPU-bound and blocking by design (no service, no loop):
it measures the detector, not the plumbing (tests/services/wake cover that).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from trioworks.services._audio import find_program
from trioworks.services.wake import Spotter, WakeConfig

VOICES = ("en-us+klatt", "en-us", "en+m3", "en+f3")
SPEEDS = (140, 180)
POSITIVES = (
    "hey tars",
    "hey tars what time is it",
    "hey tars turn off the lights",
    "okay hey tars play some music",
)
NEGATIVES = (
    "what is the weather in paris today",
    "turn off the lights in the kitchen",
    "hey there how are you",
    "he plays the guitars at night",
    "the stars are bright tonight",
    "hey taxi stop here",
)
THRESHOLDS = (1e-40, 1e-30, 1e-25, 1e-20, 1e-10)


def _clip(
    espeak: str, sox: str, folder: Path, name: str, text: str, voice: str, speed: int, noise: bool
) -> bytes:
    wav = folder / f"{name}.wav"
    subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True, timeout=30)
    raw = folder / f"{name}.raw"
    fmt = ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"]
    if noise:
        clean = folder / f"{name}.16k.wav"
        subprocess.run(
            [sox, "-D", str(wav), "-r", "16000", "-c", "1", str(clean), "pad", "0.5", "1.0"], check=True
        )
        seconds = subprocess.run([sox, "--i", "-D", str(clean)], check=True, capture_output=True, text=True)
        hiss = folder / f"{name}.noise.wav"
        subprocess.run(
            [
                sox,
                "-D",
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                str(hiss),
                "synth",
                seconds.stdout.strip(),
                "whitenoise",
                "vol",
                "0.02",
            ],
            check=True,
        )
        subprocess.run([sox, "-D", "-m", str(clean), str(hiss), *fmt, str(raw)], check=True)
    else:
        subprocess.run([sox, "-D", str(wav), *fmt, str(raw), "pad", "0.5", "1.0"], check=True)
    return raw.read_bytes()


def corpus(folder: Path, speeds: tuple[int, ...] = SPEEDS) -> list[tuple[bool, str, bytes]]:
    """(is a positive, label, 16 kHz PCM) for every phrase x voice x speed x (clean, noisy)."""
    espeak, sox = find_program("espeak-ng"), find_program("sox")
    clips = []
    n = 0
    for positive, texts in ((True, POSITIVES), (False, NEGATIVES)):
        for text in texts:
            for voice in VOICES:
                for speed in speeds:
                    for noise in (False, True):
                        n += 1
                        label = f"{text!r} {voice} {speed} wpm{' +noise' if noise else ''}"
                        clips.append(
                            (positive, label, _clip(espeak, sox, folder, f"c{n}", text, voice, speed, noise))
                        )
    return clips


def heard(spotter: Spotter, pcm: bytes) -> bool:
    chunk = 3200  # 100 ms, as the service feeds it
    found = False
    for offset in range(0, len(pcm), chunk):
        found = spotter.feed(pcm[offset : offset + chunk]) is not None or found
    spotter.reset()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrase", default="hey tars")
    parser.add_argument("--thresholds", default=None, help="comma-separated (default: 1e-40..1e-10)")
    parser.add_argument(
        "--words",
        default=None,
        help='pronunciations, "word=PHONES;word(2)=PHONES" (default: WakeConfig\'s)',
    )
    parser.add_argument("--quick", action="store_true", help="one speed, the default threshold: 80 clips")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    parser.add_argument("--verbose", action="store_true", help="list the misses and false accepts")
    args = parser.parse_args()
    if args.thresholds is not None:
        thresholds = [float(t) for t in args.thresholds.split(",")]
    else:
        thresholds = [WakeConfig().threshold] if args.quick else list(THRESHOLDS)
    words = WakeConfig().words
    if args.words is not None:
        words = dict(item.split("=", 1) for item in args.words.split(";") if item.strip())
    speeds = SPEEDS[:1] if args.quick else SPEEDS
    with tempfile.TemporaryDirectory() as tmp:
        clips = corpus(Path(tmp), speeds)
    positives = sum(1 for p, _, _ in clips if p)
    negatives = len(clips) - positives
    print(f"wake benchmark: phrase {args.phrase!r}; {positives} positive and {negatives} negative clips")
    print(f"({len(VOICES)} voices x {len(speeds)} speeds x clean/noisy; espeak-ng); words {words}\n")
    print(f"{'threshold':>10}  {'false rejects':>15}  {'false accepts':>15}")
    rows = []
    for threshold in thresholds:
        spotter = Spotter(WakeConfig(phrase=args.phrase, threshold=threshold, words=words))
        rejects = [label for p, label, pcm in clips if p and not heard(spotter, pcm)]
        accepts = [label for p, label, pcm in clips if not p and heard(spotter, pcm)]
        spotter.close()
        frr, far = len(rejects) / positives, len(accepts) / negatives
        rows.append({"threshold": threshold, "false_reject_rate": frr, "false_accept_rate": far})
        print(f"{threshold:>10g}  {frr:>8.1%} ({len(rejects):>3})  {far:>8.1%} ({len(accepts):>3})")
        for voice in VOICES:  # per voice: most misses are the British voices' non-rhotic "tars"
            pos = sum(1 for p, label, _ in clips if p and f" {voice} " in label)
            neg = sum(1 for p, label, _ in clips if not p and f" {voice} " in label)
            missed = sum(1 for label in rejects if f" {voice} " in label)
            false = sum(1 for label in accepts if f" {voice} " in label)
            print(f"{'':>10}  {missed / pos:>8.1%} ({missed:>3})  {false / neg:>8.1%} ({false:>3})  {voice}")
        if args.verbose:
            for label in rejects:
                print(f"    missed: {label}")
            for label in accepts:
                print(f"    false accept: {label}")
    if args.json is not None:
        args.json.write_text(json.dumps({"phrase": args.phrase, "words": words, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

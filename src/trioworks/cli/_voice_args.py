"""The flags of ``trioworks services`` and what they become: :class:`~trioworks.services.VoiceSettings`,
service names, and one-line errors."""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from ..bus import ServiceFailed
from ..core import single_error
from ..services import (
    SERVICE_NAMES,
    BrokerUnavailable,
    VoiceSettings,
    VoiceStackError,
    default_data_dir,
)
from ..services.llm import LLMConfig, LLMConfigError
from ..services.stt import AudioError, ProgramMissing, SttConfig, SttConfigError
from ..services.tts import TtsConfig, TtsConfigError
from ..services.wake import WakeConfig, WakeConfigError
from ._errors import CliError, Unavailable, did_you_mean
from ._install_model import install_on_first_run
from ._streams import Streams

__all__ = [
    "bus_flags",
    "freeze_heap",
    "make_data_dir",
    "parse_only",
    "seconds",
    "settings_from",
    "stack_flags",
    "trio_run",
]

T = TypeVar("T")

# The flag each field of a VoiceStackError comes from.
_FLAGS = {"bus": "--bus", "services": "--only", "remember": "--remember"}


def bus_flags() -> argparse.ArgumentParser:
    """Flags of every subcommand: the bus, where speech goes, the voice."""
    bus = argparse.ArgumentParser(add_help=False)
    bus.add_argument(
        "--bus",
        default=os.environ.get("TRIOWORKS_BUS", "memory"),
        metavar="memory|mqtt://HOST:PORT",
        help="the in-process bus (default, or $TRIOWORKS_BUS) or an MQTT broker",
    )
    bus.add_argument(
        "--audio-dir",
        type=Path,
        default=_env_path("TRIOWORKS_AUDIO_DIR"),
        metavar="DIR",
        help="write speech as WAV files here (default: a sound card if there is one, else WAV files "
        "in $TMPDIR/trioworks-tts; or $TRIOWORKS_AUDIO_DIR)",
    )
    bus.add_argument(
        "--voice",
        default=None,
        help="espeak-ng voice (default en-us; `say` over MQTT: the running tts's own)",
    )
    return bus


def stack_flags() -> argparse.ArgumentParser:
    """Flags of the subcommands that start the stack (``run``, ``ask``)."""
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"memory store directory (default $TRIOWORKS_DATA, else {_shown(default_data_dir())})",
    )
    stack.add_argument(
        "--llm-base-url", metavar="URL", help="an OpenAI-compatible server (default: offline rules)"
    )
    stack.add_argument("--llm-model", metavar="NAME", help="model name for --llm-base-url")
    stack.add_argument(
        "--llm-api-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    stack.add_argument(
        "--phrase",
        action="append",
        default=[],
        metavar="TEXT",
        help="recognise only these sentences (repeatable; a grammar: exact on synthetic speech)",
    )
    stack.add_argument(
        "--stt-url",
        default=None,
        metavar="tcp://HOST:PORT",
        help="transcribe on this Wyoming ASR server (faster-whisper...) instead of pocketsphinx",
    )
    stack.add_argument(
        "--tts-url",
        default=None,
        metavar="tcp://HOST:PORT",
        help="speak with this Wyoming TTS server (piper...) instead of espeak-ng",
    )
    stack.add_argument(
        "--remember",
        action="append",
        default=[],
        metavar="FACT",
        help="store FACT in memory first (repeatable)",
    )
    return stack


def parse_only(text: str) -> tuple[str, ...]:
    """``"stt,llm"`` -> ``("stt", "llm")`` in pipeline order; :class:`CliError` naming an unknown name."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise CliError(f"--only: expected a comma-separated list of {', '.join(SERVICE_NAMES)}, got {text!r}")
    for name in names:
        if name not in SERVICE_NAMES:
            raise CliError(
                f"--only: unknown service {name!r}{did_you_mean(name, SERVICE_NAMES)} "
                f"(expected some of {', '.join(SERVICE_NAMES)})"
            )
    return tuple(n for n in SERVICE_NAMES if n in names)


def freeze_heap() -> None:
    """Move everything allocated during start-up out of the garbage collector's reach.

    A full collection walks every object while holding the GIL (25-30 ms for the models' and
    modules' objects): frozen, they are never walked again, so the loop does not stall on them.
    For a process that runs only the voice stack (the command owns the process).
    """
    gc.collect()
    gc.freeze()


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _shown(path: Path) -> str:
    home = str(Path.home())
    return "~" + str(path)[len(home) :] if str(path).startswith(home) else str(path)


def _llm_config(args: argparse.Namespace) -> LLMConfig:
    url = getattr(args, "llm_base_url", None)
    if url is None:
        for flag in ("llm_model", "llm_api_key_env"):
            if getattr(args, flag, None):
                raise CliError(f"--{flag.replace('_', '-')}: only used with --llm-base-url")
        return LLMConfig()  # the offline rules (not a language model)
    if not args.llm_model:
        raise CliError("--llm-model: required with --llm-base-url (the model the server should run)")
    key_var = args.llm_api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(key_var)
    if args.llm_api_key_env and not key:
        raise CliError(f"--llm-api-key-env: ${key_var} is not set")
    try:
        return LLMConfig(provider="openai", base_url=url, model=args.llm_model, api_key=key)
    except LLMConfigError as exc:
        raise CliError(f"--llm-base-url: {exc.problem}") from exc


def _wake_config(args: argparse.Namespace) -> WakeConfig:
    flags = {"phrase": "--wake-phrase", "threshold": "--wake-threshold", "url": "--wake-url"}
    given = {
        field: getattr(args, f"wake_{field}")
        for field in flags
        if getattr(args, f"wake_{field}", None) is not None
    }
    try:
        return WakeConfig(**given)
    except WakeConfigError as exc:
        raise CliError(f"{flags.get(exc.field, '--wake-' + exc.field)}: {exc.problem}") from exc


def settings_from(args: argparse.Namespace, *, realtime: bool) -> VoiceSettings:
    try:
        stt = SttConfig(phrases=tuple(getattr(args, "phrase", ())), url=getattr(args, "stt_url", None))
    except SttConfigError as exc:
        raise CliError(f"--{'stt-url' if exc.field == 'url' else 'phrase'}: {exc.problem}") from exc
    tts_url = getattr(args, "tts_url", None)
    try:
        TtsConfig(url=tts_url)
    except TtsConfigError as exc:
        raise CliError(f"--tts-url: {exc.problem}") from exc
    wake = _wake_config(args)
    data = getattr(args, "data", None)
    try:
        return VoiceSettings(
            bus=args.bus,
            data_dir=data if data is not None else default_data_dir(),
            audio_dir=args.audio_dir,
            llm=_llm_config(args),
            stt=stt,
            voice=args.voice or "en-us",
            realtime=realtime,
            remember=tuple(getattr(args, "remember", ())),
            tts_url=tts_url,
            wake=wake,
        )
    except VoiceStackError as exc:
        raise stack_error(exc) from exc


def stack_error(exc: VoiceStackError) -> CliError:
    """The flag at fault, named as the user typed it."""
    return CliError(f"{_FLAGS.get(exc.field, exc.field)}: {exc.problem}")


def make_data_dir(settings: VoiceSettings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data: cannot create {settings.data_dir}: {exc.strerror or exc}") from exc


def trio_run(main: Callable[[], Awaitable[T]], io: Streams) -> T:
    """``trio.run(main)`` with the voice stack's failures turned into one-line CLI errors.

    Missing embedding weights are installed on the first run (reported on ``io``), then ``main``
    runs again from the start: they are found when the memory service starts, before any turn.
    """
    try:
        return trio.run(main)
    except BaseException as exc:
        error = single_error(exc)
        if install_on_first_run(error, io):
            return trio_run(main, io)
        if isinstance(error, CliError | KeyboardInterrupt):
            raise error from None
        if isinstance(error, VoiceStackError):
            raise stack_error(error) from error
        if isinstance(error, BrokerUnavailable):
            raise Unavailable(f"--bus: {error}") from error
        if isinstance(error, ProgramMissing):
            raise Unavailable(str(error)) from error
        if isinstance(error, AudioError):
            raise CliError(str(error)) from error
        if isinstance(error, SttConfigError):
            raise CliError(f"--phrase: {error.problem}") from error
        if isinstance(error, ServiceFailed):
            raise Unavailable(str(error)) from error
        if type(error).__name__ == "MemoryStoreError":  # not imported here: it would load numpy
            raise CliError(f"--data: {error}") from error
        if type(error).__name__ == "ModelNotInstalled" or isinstance(error, ModuleNotFoundError):
            raise Unavailable(str(error)) from error  # the message says what to install, and how
        raise

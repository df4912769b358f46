"""``trioworks services run | say | ask``: the voice services from the command line.

- ``run`` serves the chosen services (one nursery, one process) until SIGINT (exit 130) or
  SIGTERM (exit 0); each service leaves its retained ``system/health/<name>`` ``stopped``.
- ``say`` speaks a text through the tts service (in process, or the one behind the broker).
- ``ask`` runs one voice turn from a WAV file (:func:`trioworks.services.ask_once`, as the demo does).
- ``install-model`` installs the memory service's weights (:mod:`._install_model`).

The wiring is :class:`trioworks.services.VoiceStack`; flags become its settings, and failures
one-line errors (exit 2 for bad input, 1 for what is missing or failed at run time), in
:mod:`._voice_args`.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ..services import PYTARS_NAMES, SERVICE_NAMES, TurnResult, VoiceSettings, VoiceStack, ask_once, say
from ..services.persona import PersonaConfig
from ..services.stt import SttService as _SttService
from ..services.stt import mic_source
from ..services.tts import CommandSink
from . import _install_model
from ._errors import CliError, Unavailable
from ._streams import Streams
from ._voice_args import (
    bus_flags,
    freeze_heap,
    make_data_dir,
    parse_only,
    seconds,
    settings_from,
    stack_flags,
    trio_run,
)

__all__ = ["register", "show_turn"]


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    services = commands.add_parser(
        "services",
        parents=[common],
        help="run the voice services, speak a text, or ask a question from a WAV file",
        description="The voice assistant's services (stt, memory, llm, tts, router, persona) on an in-process bus "
        "or an MQTT broker. Exit codes: 0 ok, 1 a service, broker or program is missing or failed, "
        "2 bad input, 130 interrupted.",
    )
    sub = services.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    bus, stack = bus_flags(), stack_flags()

    run = sub.add_parser(
        "run",
        parents=[common, bus, stack],
        help="serve the voice services until Ctrl-C",
        description="Run the chosen services in one process until SIGINT (exit 130) or SIGTERM (exit 0).",
    )
    run.add_argument(
        "--only",
        default=None,
        metavar="LIST",
        help=f"comma-separated services out of {','.join(SERVICE_NAMES)} (default: all but stt; all with --mic)",
    )
    run.add_argument("--mic", action="store_true", help="stt listens to the microphone (ALSA arecord)")
    run.add_argument(
        "--wake",
        action="store_true",
        help="also run the wake service on the microphone; the router then answers only after the wake word",
    )
    run.add_argument("--wake-phrase", default=None, metavar="TEXT", help="the wake word (default 'hey tars')")
    run.add_argument(
        "--wake-threshold", type=float, default=None, metavar="X", help="keyphrase threshold (default 1e-30)"
    )
    run.add_argument(
        "--wake-url",
        default=None,
        metavar="tcp://HOST:PORT",
        help="detect on this Wyoming wake server (openWakeWord...) instead of pocketsphinx",
    )
    run.add_argument(
        "--pytars-names",
        action="store_true",
        help="py-tars' service names on the bus (tars-stt, tars-tts, llm-worker, memory-worker, router): "
        "its router waits for system/health/tars-tts and tars-stt",
    )
    run.add_argument(
        "--character",
        type=Path,
        default=None,
        metavar="TOML",
        help="the persona's character file (py-tars' character.toml; default: the built-in TARS)",
    )
    run.add_argument(
        "--broker",
        type=int,
        nargs="?",
        const=1883,
        default=None,
        metavar="PORT",
        help="start a local mosquitto (the shipped mosquitto.conf) on 127.0.0.1:PORT (1883) and serve on it",
    )
    run.set_defaults(handler=_run_command)

    say_parser = sub.add_parser(
        "say",
        parents=[common, bus],
        help="speak TEXT through the tts service",
        description="Publish tts/say and wait for its speaking_end; print the WAV path (or the device).",
    )
    say_parser.add_argument("text", metavar="TEXT")
    say_parser.add_argument(
        "--timeout", type=seconds, default=30.0, metavar="S", help="wait at most S s (30)"
    )
    say_parser.set_defaults(handler=_say_command)

    ask_parser = sub.add_parser(
        "ask",
        parents=[common, bus, stack],
        help="one voice turn: a WAV question in, a spoken answer out",
        description="Transcribe WAV (stt here), let router, llm (with memory) and tts answer, and print the "
        "transcript, the memory hits, the answer and the reply's WAV path. With --bus memory the "
        "whole stack runs in this process; over MQTT the other services must be running.",
    )
    ask_parser.add_argument("wav", type=Path, metavar="WAV")
    ask_parser.add_argument("--timeout", type=seconds, default=60.0, metavar="S", help="the whole turn (60)")
    ask_parser.set_defaults(handler=_ask_command)
    _register_inspection(sub, common)
    _install_model.register(sub, [common])
    services.set_defaults(handler=_usage(services))


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace, Streams], int]:
    def handler(args: argparse.Namespace, io: Streams) -> int:
        parser.print_usage(io.err.file)
        raise CliError("give a subcommand: run, say, ask, history, memory or install-model")

    return handler


# --- run --------------------------------------------------------------------------------------


def _run_command(args: argparse.Namespace, io: Streams) -> int:
    names = (
        parse_only(args.only)
        if args.only is not None
        else tuple(n for n in SERVICE_NAMES if args.mic or n != "stt")
    )
    if "stt" in names and not args.mic:
        raise CliError("--only: stt needs --mic to listen to (`services ask` transcribes its WAV itself)")
    if args.mic and "stt" not in names:
        raise CliError("--mic: only the stt service listens to it; add stt to --only")
    if args.wake:
        names = (*names, "wake")
    elif args.wake_url or args.wake_phrase or args.wake_threshold is not None:
        raise CliError("--wake-url, --wake-phrase, --wake-threshold: only used with --wake")
    if args.remember and "memory" not in names:
        raise CliError("--remember: the memory service is not among --only")
    settings = settings_from(args, realtime=True)
    if args.broker is not None:
        settings = attrs.evolve(settings, bus=f"mqtt://127.0.0.1:{args.broker}")
    if args.character is not None:
        settings = attrs.evolve(settings, persona=PersonaConfig(character_file=args.character))
    if settings.bus == "memory" and "memory" not in names:
        settings = attrs.evolve(settings, rag_k=0)  # nobody to ask: RAG would wait 5 s every turn
    if settings.bus == "memory" and not args.mic and args.broker is None:
        io.warning("on the in-process bus with no --mic nothing outside this process reaches the services")
    if "memory" in names:
        make_data_dir(settings)

    # A stack of its own each time: trio_run runs again after installing missing weights.
    def stack() -> VoiceStack:
        return VoiceStack(
            settings,
            services=names,
            stt_source=mic_source() if args.mic else None,
            wake_source=mic_source() if args.wake else None,  # an arecord of its own
            names=PYTARS_NAMES if args.pytars_names else None,
        )

    if args.broker is not None:
        return trio_run(lambda: _serve_with_broker(args.broker, stack, io), io)
    return trio_run(lambda: _serve(stack(), io), io)


async def _serve_with_broker(port: int, stack: Callable[[], VoiceStack], io: Streams) -> int:
    """:func:`_serve` beside a local mosquitto (stopped after the services)."""
    from ..services import local_broker

    with tempfile.TemporaryDirectory(prefix="trioworks-mosquitto-") as workdir:
        async with local_broker(port, Path(workdir)) as url:
            io.note(f"mosquitto on {url} (the shipped mosquitto.conf)")
            return await _serve(stack(), io)


async def _serve(stack: VoiceStack, io: Streams) -> int:
    """The stack until a signal: 130 for SIGINT, 0 for SIGTERM."""
    code = 0
    settings = stack.settings
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                nonlocal code
                async for signum in signals:
                    code = 130 if signum == signal.SIGINT else 0
                    io.note(f"{signal.Signals(signum).name}: stopping the services")
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            await nursery.start(stack.run)
            freeze_heap()
            where = "the in-process bus" if stack.in_process else settings.bus
            io.note(
                f"serving {', '.join(stack.services)} on {where}"
                + _details(settings, stack.services)
                + "; Ctrl-C to stop"
            )
            if stack.stt is not None:
                nursery.start_soon(_mic_ended, stack.stt)
    io.note("services stopped")
    return code


def _details(settings: VoiceSettings, names: tuple[str, ...]) -> str:
    parts = []
    if "memory" in names:
        parts.append(f"memory {settings.memory_path}")
    if "llm" in names:
        llm = settings.llm
        parts.append(
            f"llm {llm.model} at {llm.base_url}" if llm.provider == "openai" else "llm offline rules"
        )
    if "tts" in names and settings.audio_dir is not None:
        parts.append(f"speech to {settings.audio_dir}")
    return f" ({'; '.join(parts)})" if parts else ""


async def _mic_ended(stt: _SttService) -> None:
    await stt.finished.wait()
    raise Unavailable("the microphone stream ended (arecord stopped): is there a capture device?")


# --- say --------------------------------------------------------------------------------------


def _say_command(args: argparse.Namespace, io: Streams) -> int:
    settings = settings_from(args, realtime=False)
    if not args.text.strip():
        raise CliError("TEXT: nothing to say")
    # In process the tts runs here; over MQTT the one behind the broker speaks.
    services = ("tts",) if settings.in_process else ()
    return trio_run(
        lambda: _say(VoiceStack(settings, services=services), args.text, args.timeout, args.voice, io), io
    )


async def _say(stack: VoiceStack, text: str, limit: float, voice: str | None, io: Streams) -> int:
    async with trio.open_nursery() as nursery:
        await nursery.start(stack.run)
        client = stack.client("cli")
        await nursery.start(client.run)
        result = await say(client, text, limit=limit, voice=voice)  # None: the tts's own voice
        nursery.cancel_scope.cancel()
    if result.event is None:
        health = result.health or "nothing on system/health/tts"
        raise Unavailable(
            f"no speaking_end from the tts within {limit:g} s ({health}): is it running on this bus?"
        )
    if result.event == "stopped":
        io.error(f"the tts stopped the utterance: {result.reason}")
        return 1
    if result.path is not None:
        io.write(str(result.path))
    else:
        sink = stack.tts.sink if stack.tts is not None else None
        device = sink.command[0] if isinstance(sink, CommandSink) else "the tts service's audio device"
        io.write(f"played on {device}")
    return 0


# --- ask --------------------------------------------------------------------------------------


def _ask_command(args: argparse.Namespace, io: Streams) -> int:
    settings = settings_from(args, realtime=False)
    if not args.wav.is_file():
        raise CliError(f"no such file: {args.wav}")
    in_process = settings.bus == "memory"
    if settings.remember and not in_process:
        raise CliError(
            "--remember: the memory service runs behind the broker; give the facts to "
            "`trioworks services run --remember ...` where it runs"
        )
    if in_process:
        make_data_dir(settings)

    def started(seconds: float) -> None:
        io.note(f"services ready in {seconds:.1f} s")
        freeze_heap()

    async def main() -> TurnResult:
        return await ask_once(settings, args.wav, limit=args.timeout, on_started=started)

    result = trio_run(main, io)
    show_turn(result, io)
    if result.problem is not None:
        io.error(result.problem)
        return 1
    if result.llm_error is not None:
        io.error(f"the llm failed: {result.llm_error}")
        return 1
    return 0


def show_turn(result: TurnResult, io: Streams) -> None:
    """The turn as lines on stdout: transcript, memory hits, answer, reply, timings."""
    lines = []
    if result.transcript is not None:
        confidence = f" (confidence {result.confidence:.2f})" if result.confidence is not None else ""
        lines.append(f"transcript: {result.transcript}{confidence}")
    if result.rag_asked:
        hits = result.used_hits
        if not hits:
            lines.append(
                "memory:     (no hits)" if result.rag_seconds is not None else "memory:     (no reply)"
            )
        for i, hit in enumerate(hits):
            label = "memory:    " if i == 0 else "           "
            lines.append(f"{label} {hit.score:.4f}  {hit.document.get('text', '')}")
    if result.answer is not None or result.llm_error is not None:
        via = f" ({result.provider}, {result.model})" if result.provider else ""
        lines.append(f"answer:     {result.answer if result.answer is not None else ''}{via}")
    for path in result.reply_paths:
        lines.append(f"reply:      {path}")
    if result.turn_id is not None and result.answer and not result.reply_paths and result.spoken:
        lines.append("reply:      played on the tts service's audio device")
    timings = []
    if result.first_audio is not None:
        timings.append(f"transcript -> first audio {result.first_audio * 1000:.0f} ms")
    if result.rag_seconds is not None:
        timings.append(f"RAG round trip {result.rag_seconds * 1000:.0f} ms")
    if timings:
        lines.append(f"timing:     {'; '.join(timings)}")
    for line in lines:
        io.write(line)


# --- history, memory list | forget ------------------------------------------------------------

_SPEAKERS = {"stt": "user", "tts": "assistant", "note": "note"}


def _register_inspection(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="the voice data folder (default $TRIOWORKS_DATA or ~/.local/share/trioworks/voice)",
    )
    history = sub.add_parser(
        "history",
        parents=[common, data],
        help="the conversation the memory service stored: who said what, oldest first",
        description="Print what the memory service stored (user, assistant, note), one line each.",
    )
    history.add_argument("--last", type=int, default=20, metavar="N", help="the last N entries (20; 0: all)")
    history.set_defaults(handler=_history_command)
    memory = sub.add_parser(
        "memory",
        parents=[common],
        help="list or forget what the memory service stored",
        description="Inspect and edit the memory store (stop the memory service first: a running one "
        "keeps what it loaded until it restarts).",
    )
    actions = memory.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[common, data], help="every document: id, source, time, text"
    )
    listing.add_argument("--source", default=None, help="only this source (stt, tts, note)")
    listing.set_defaults(handler=_memory_list_command)
    forget = actions.add_parser("forget", parents=[common, data], help="delete documents by id")
    forget.add_argument("ids", type=int, nargs="+", metavar="ID")
    forget.set_defaults(handler=_memory_forget_command)
    memory.set_defaults(handler=_usage_memory(memory))


def _usage_memory(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace, Streams], int]:
    def handler(args: argparse.Namespace, io: Streams) -> int:
        parser.print_usage(io.err.file)
        raise CliError("give an action: list or forget")

    return handler


def _store_path(args: argparse.Namespace) -> Path:
    from ..services import default_data_dir

    return VoiceSettings(data_dir=args.data if args.data is not None else default_data_dir()).memory_path


def _documents(args: argparse.Namespace) -> list[Any]:
    from ..services.memory import MemoryStoreError, read_documents

    try:
        return read_documents(_store_path(args))
    except MemoryStoreError as exc:
        raise CliError(str(exc)) from None


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _history_command(args: argparse.Namespace, io: Streams) -> int:
    if args.last < 0:
        raise CliError(f"--last: expected a count >= 0, got {args.last}")
    docs = _documents(args)
    for doc in docs[-args.last :] if args.last else docs:
        io.write(f"{_when(doc.timestamp)}  {_SPEAKERS.get(doc.source, doc.source)}: {doc.text}")
    return 0


def _memory_list_command(args: argparse.Namespace, io: Streams) -> int:
    for doc in _documents(args):
        if args.source is None or doc.source == args.source:
            io.write(f"{doc.id}\t{doc.source}\t{_when(doc.timestamp)}\t{doc.text}")
    return 0


def _memory_forget_command(args: argparse.Namespace, io: Streams) -> int:
    from ..services.memory import MemoryStoreError, forget_documents

    try:
        found = forget_documents(_store_path(args), args.ids)
    except MemoryStoreError as exc:
        raise CliError(str(exc)) from None
    missing = sorted(set(args.ids) - set(found))
    io.note(f"forgot {len(found)} document(s)" + (f"; no document {missing}" if missing else ""))
    return 0 if not missing else 2

"""What ``trioworks demo`` runs, and how it judges each run: one section per subsystem.

Each section runs something real and returns what it saw; a pure function turns that into
:class:`Highlight` claims, each checked against the run (so a test can change one fact of a real
run and see the one claim about it turn false). The command line narrates (``trioworks demo``,
:mod:`trioworks.cli`); nothing here prints.

1. The DAG runner: the ETL of :mod:`trioworks.demo.etl` (:func:`build_workflow`, :func:`resources`;
   ``examples/dag_demo.py`` re-exports them), judged by :func:`dag_highlights`.
2. Worker and server: :func:`run_flow` runs the embedded server, a worker serving
   :mod:`trioworks.demo.activities` (:data:`ACTIVITIES`, the workflow :data:`DEFINITION` and its
   :data:`INPUT`, for the worker slug :data:`WORKER`) and a client following the workflow
   (:class:`FlowStep` as it goes, a :class:`FlowRun` at the end), judged by :func:`flow_highlights`.
3. The voice services: :func:`ask_question` asks :data:`QUESTION` of the whole voice stack, which
   remembers :data:`FACTS` (espeak-ng voice :data:`VOICE`, stt grammar :data:`PHRASES`); a
   :class:`VoiceRun` is judged by :func:`voice_highlights`.

:mod:`trioworks.demo.etl` and :mod:`trioworks.demo.activities` are public modules because a runner
loads them by name (``trioworks dag run trioworks.demo.etl``, ``trioworks worker --app
trioworks.demo.activities``, and worker processes importing a ``process=True`` function). A name
is imported on first use (PEP 562), so that a worker process importing one of them does not load
the server and the voice services.
"""

import typing

from ..core import lazy_exports as _lazy_exports
from ._highlight import Highlight

if typing.TYPE_CHECKING:
    from ._dag_highlights import dag_highlights
    from ._flow import FlowStep, run_flow
    from ._flow_highlights import FlowRun, flow_highlights
    from ._voice import FACTS, PHRASES, QUESTION, VOICE, VoiceRun, ask_question, voice_highlights
    from .activities import ACTIVITIES, DEFINITION, INPUT, WORKER
    from .etl import build_workflow, resources

__all__ = [
    "ACTIVITIES",
    "DEFINITION",
    "FACTS",
    "INPUT",
    "PHRASES",
    "QUESTION",
    "VOICE",
    "WORKER",
    "FlowRun",
    "FlowStep",
    "Highlight",
    "VoiceRun",
    "ask_question",
    "build_workflow",
    "dag_highlights",
    "flow_highlights",
    "resources",
    "run_flow",
    "voice_highlights",
]

# Name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "ACTIVITIES": "activities",
    "DEFINITION": "activities",
    "INPUT": "activities",
    "WORKER": "activities",
    "build_workflow": "etl",
    "resources": "etl",
    "dag_highlights": "_dag_highlights",
    "FlowStep": "_flow",
    "run_flow": "_flow",
    "FlowRun": "_flow_highlights",
    "flow_highlights": "_flow_highlights",
    "FACTS": "_voice",
    "PHRASES": "_voice",
    "QUESTION": "_voice",
    "VOICE": "_voice",
    "VoiceRun": "_voice",
    "ask_question": "_voice",
    "voice_highlights": "_voice",
}

if not typing.TYPE_CHECKING:  # type checkers see the imports above instead
    __getattr__, __dir__ = _lazy_exports(globals(), _LAZY, __all__)

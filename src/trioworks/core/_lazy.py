"""Names of a package imported from their module on first use (PEP 562 ``__getattr__``).

A package re-exports names whose modules are slow to import or need an optional extra (the
Postgres backend needs psycopg, the memory service numpy): importing the package stays cheap
and works without the extra; the name's module is imported when the name is first read, and
the value is cached in the package's namespace, so later reads are plain attribute reads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any],
    modules: Mapping[str, str],
    exported: Iterable[str],
    *,
    extra: str | None = None,
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    ``modules`` maps each lazy name to its module's name inside the package (``"router"``).
    With ``extra``, a module that cannot be imported for want of a package raises
    :class:`ImportError` naming the name, the missing package and ``pip install
    'trioworks[extra]'``.
    """
    package = namespace["__name__"]
    names = sorted({*exported})

    def __getattr__(name: str) -> object:
        module_name = modules.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(f"{package}.{module_name}")
        except ModuleNotFoundError as exc:
            if extra is None:
                raise
            raise ImportError(
                f"{package}.{name} needs the {extra} extra (missing {exc.name!r}): "
                f"pip install 'trioworks[{extra}]'",
                name=exc.name,
            ) from exc
        value = getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__

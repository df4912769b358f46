"""``lazy_exports``: a package's names imported from their modules on first read."""

from __future__ import annotations

import sys
import types

import pytest

from trioworks.core import lazy_exports


@pytest.fixture
def package(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A package ``lazypkg`` with a module ``present`` and a module ``needs_extra`` that imports
    a package which is not installed."""
    pkg = types.ModuleType("lazypkg")
    pkg.__path__ = []
    present = types.ModuleType("lazypkg.present")
    present.VALUE = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lazypkg", pkg)
    monkeypatch.setitem(sys.modules, "lazypkg.present", present)
    table = {"VALUE": "present", "Missing": "needs_extra"}
    pkg.__getattr__, pkg.__dir__ = lazy_exports(vars(pkg), table, ["VALUE", "Missing"], extra="postgres")  # type: ignore[attr-defined]
    return pkg


def test_a_name_is_imported_on_first_read_and_then_cached(package: types.ModuleType) -> None:
    assert "VALUE" not in vars(package)
    assert package.VALUE == 42
    assert vars(package)["VALUE"] == 42  # cached: later reads skip __getattr__
    assert {"VALUE", "Missing"} <= set(dir(package))


def test_an_unknown_name_is_an_attribute_error(package: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'Nope'"):
        package.Nope  # noqa: B018


def test_a_missing_extra_names_the_name_the_package_and_the_pip_command(package: types.ModuleType) -> None:
    with pytest.raises(ImportError) as info:
        package.Missing  # noqa: B018
    message = str(info.value)
    assert "lazypkg.Missing needs the postgres extra" in message
    assert "pip install 'trioworks[postgres]'" in message
    assert info.value.name == "lazypkg.needs_extra"

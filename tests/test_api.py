"""The public API: ``camhub.__all__`` is complete and every listed name exists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import camhub


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(camhub).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public - set(camhub.__all__) == set(), "public names missing from camhub.__all__"
    assert set(camhub.__all__) - set(dir(camhub)) == set(), "names in __all__ that do not exist"
    assert len(camhub.__all__) == len(set(camhub.__all__)), "duplicates in camhub.__all__"


def test_every_module_all_names_exist_and_modules_say_what_they_are_for() -> None:
    for info in pkgutil.walk_packages(camhub.__path__, "camhub."):
        if info.name == "camhub.__main__":
            continue
        module = importlib.import_module(info.name)
        assert (module.__doc__ or "").strip(), f"{info.name} has no module docstring"
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"{info.name}.__all__ lists missing {name}"

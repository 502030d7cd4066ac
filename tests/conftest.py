"""Shared fixtures: a plugin host with the installed plugins, and a small valid province."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from camhub import PluginHost
from provinces import PASSWORD

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def host() -> PluginHost:
    return PluginHost.from_installed()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMHUB_TEST_PASSWORD", PASSWORD)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML file (dedented) under tmp_path and return its path."""

    def _write(text: str, name: str = "province.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write

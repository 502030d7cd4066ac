"""The plugin host and every hook: discovery by entry point, isolation, blocking, observers.

Broken plugins are real installed distributions: each test writes a ``*.dist-info`` folder with
an ``entry_points.txt`` on a temporary ``sys.path`` entry, exactly as pip would leave one.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from camhub import (
    AdapterSpec,
    DeviceAdapter,
    DeviceConfig,
    FilesystemStorageConfig,
    PluginHost,
    ProvinceConfig,
    hookimpl,
    hookspecs,
    load_config_text,
)
from camhub.adapter import DiscoveredDevice
from camhub.storage import FilesystemStorage
from provinces import BASE, REPO

Install = Callable[[str, str, str, str], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """Install a one-module distribution with one entry point, as pip would (dist-info)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def _install(dist: str, group: str, name: str, source: str) -> None:
        module = f"plug_{dist.replace('-', '_')}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")

    return _install


def info(host: PluginHost, name: str) -> tuple[str, str]:
    found = next(p for p in host.plugins if p.name == name)
    return found.status, found.error


def test_installed_adapters_form_the_vendor_union(host: PluginHost) -> None:
    assert set(host.adapters) >= {"hikvision", "dahua", "onvif", "toy", "rtsp"}
    assert {"filesystem", "s3"} <= set(host.storage_backends)


def test_toy_adapter_out_of_tree_appears_and_validates(host: PluginHost) -> None:
    toy = next(p for p in host.plugins if p.name == "toy")
    assert (toy.status, toy.distribution, toy.group) == ("loaded", "camhub-toy", "camhub.adapters")
    text = BASE.replace(
        "{id: cam-1, vendor: hikvision, kind: camera, host: 127.0.0.1, credentials: site}",
        "{id: cam-1, vendor: toy, kind: camera, host: 127.0.0.1, credentials: site, "
        "api_token: {$env: CAMHUB_TEST_PASSWORD}}",
    )
    device = load_config_text(text, host=host).device("cam-1")
    assert type(device).__name__ == "ToyConfig"


def test_plugin_that_fails_to_import_is_reported_not_fatal(install: Install) -> None:
    install("camhub-broken", "camhub.adapters", "broken", "raise RuntimeError('no SDK here')\n")
    host = PluginHost.from_installed()
    status, error = info(host, "broken")
    assert status == "failed"
    assert "RuntimeError('no SDK here')" in error
    assert "hikvision" in host.adapters  # the others still load


def test_adapter_entry_point_name_must_be_its_vendor(install: Install) -> None:
    install(
        "camhub-misnamed",
        "camhub.adapters",
        "acme",
        """
        from camhub import AdapterSpec, DeviceAdapter, DeviceConfig, hookimpl

        @hookimpl
        def camhub_register_adapters(register):
            register(AdapterSpec(vendor="other", config_type=DeviceConfig, adapter_type=DeviceAdapter))
        """,
    )
    host = PluginHost.from_installed()
    assert info(host, "acme") == (
        "failed",
        "an adapter plugin registers exactly one adapter named like its entry point 'acme'; "
        "it registered: other",
    )
    assert "other" not in host.adapters and "acme" not in host.adapters


def test_unknown_hook_is_reported(install: Install) -> None:
    install("camhub-typo", "camhub.plugins", "typo", "def camhub_register_adaptors(register): pass\n")
    host = PluginHost.from_installed()
    assert info(host, "typo") == ("failed", "unknown hook 'camhub_register_adaptors'")


def test_registration_that_raises_is_isolated(install: Install) -> None:
    install(
        "camhub-raises",
        "camhub.plugins",
        "raises",
        """
        def camhub_register_storage_backends(register):
            raise ValueError("bad storage")
        """,
    )
    host = PluginHost.from_installed()
    assert info(host, "raises") == ("failed", "bad storage")


def test_duplicate_vendor_is_refused(host: PluginHost) -> None:
    class Dup:
        @staticmethod
        @hookimpl
        def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
            register(AdapterSpec(vendor="hikvision", config_type=DeviceConfig, adapter_type=DeviceAdapter))

    fresh = PluginHost.from_installed()
    assert not fresh.add_plugin(Dup(), "dup")
    assert info(fresh, "dup") == ("failed", "vendor 'hikvision' is already registered by another plugin")


def test_block_list_by_argument_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    host = PluginHost.from_installed(blocked=["toy"])
    assert "toy" not in host.adapters
    assert info(host, "toy") == ("blocked", "")
    monkeypatch.setenv("CAMHUB_DISABLED_PLUGINS", "dahua, onvif")
    host = PluginHost.from_installed()
    assert {"dahua", "onvif"}.isdisjoint(host.adapters)
    assert "hikvision" in host.adapters


def test_no_plugin_loading_at_import() -> None:
    import camhub.plugins

    assert not [name for name, value in vars(camhub.plugins).items() if isinstance(value, PluginHost)]


def test_plugin_failure_is_logged() -> None:
    with structlog.testing.capture_logs() as logs:
        host = PluginHost()
        host.add_plugin(object(), "empty", group="camhub.adapters")
    assert logs == [
        {
            "event": "plugin_failed",
            "plugin": "empty",
            "group": "camhub.adapters",
            "error": "an adapter plugin registers exactly one adapter named like its entry point "
            "'empty'; it registered: none",
            "log_level": "warning",
        }
    ]


# -- each hook: documented and tested (tests/test_plugins.py::test_hook_<name>) -----------------
def test_hook_camhub_register_adapters() -> None:
    @hookimpl
    def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
        register(AdapterSpec(vendor="acme", config_type=DeviceConfig, adapter_type=DeviceAdapter))

    host = PluginHost()
    plugin = type("Acme", (), {"camhub_register_adapters": staticmethod(camhub_register_adapters)})()
    assert host.add_plugin(plugin, "acme", group="camhub.adapters")
    assert host.adapters["acme"].adapter_type is DeviceAdapter
    assert host.device_config_types()["acme"] is DeviceConfig
    assert set(host.device_config_types()) == {"acme", "rtsp"}  # rtsp: the built-in plugin's


def test_hook_camhub_register_storage_backends(tmp_path: Path) -> None:
    host = PluginHost()
    spec = host.storage_backends["filesystem"]
    assert (spec.name, spec.config_type) == ("filesystem", FilesystemStorageConfig)
    store = spec.factory(FilesystemStorageConfig(backend="filesystem", path="central"), tmp_path)
    assert isinstance(store, FilesystemStorage)
    assert store.root == tmp_path.resolve() / "central"

    class Bad:
        @staticmethod
        @hookimpl
        def camhub_register_storage_backends(register: Callable[[object], None]) -> None:
            register("not a spec")

    assert not host.add_plugin(Bad(), "bad")
    assert info(host, "bad") == ("failed", "register() takes a StorageBackendSpec, got str")


def test_hook_camhub_config_loaded() -> None:
    seen: list[ProvinceConfig] = []

    class Observer:
        @staticmethod
        @hookimpl
        def camhub_config_loaded(config: ProvinceConfig) -> None:
            seen.append(config)

    class Failing:
        @staticmethod
        @hookimpl
        def camhub_config_loaded(config: ProvinceConfig) -> None:
            raise RuntimeError("observer bug")

    host = PluginHost.from_installed()
    host.add_plugin(Observer(), "observer")
    host.add_plugin(Failing(), "failing")
    with structlog.testing.capture_logs() as logs:
        config = load_config_text(BASE, host=host)
    assert seen == [config]
    assert [(e["event"], e["plugin"]) for e in logs] == [("plugin_observer_failed", "failing")]


def _hooks() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("camhub_")]


@pytest.mark.parametrize("name", _hooks())
def test_every_hook_is_documented(name: str) -> None:
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook) or ""
    for param in inspect.signature(hook).parameters:
        assert f":param {param}:" in doc, f"{name}: parameter {param} is not documented"
    assert ".. versionadded::" in doc
    assert "Called" in doc, f"{name}: say when the hook is called"


@pytest.mark.parametrize("name", _hooks())
def test_every_hook_is_tested(name: str) -> None:
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").glob("test_*.py"))
    assert re.search(rf"^def test_hook_{name}\(", tests, re.MULTILINE), f"no test_hook_{name}"


def test_hook_camhub_discover_devices() -> None:
    found = DiscoveredDevice(
        address="127.0.0.7", protocol="test", vendor="acme", urls=("http://127.0.0.7/x",)
    )

    class Finder:
        @staticmethod
        @hookimpl
        def camhub_discover_devices(interface: str, timeout: float) -> list[DiscoveredDevice]:
            assert (interface, timeout) == ("127.0.0.1", 0.5)
            return [found]

    class Broken:
        @staticmethod
        @hookimpl
        def camhub_discover_devices(interface: str, timeout: float) -> list[DiscoveredDevice]:
            raise OSError("no multicast here")

    host = PluginHost()
    host.add_plugin(Finder(), "finder")
    host.add_plugin(Broken(), "broken")
    with structlog.testing.capture_logs() as logs:
        assert host.discover("127.0.0.1", 0.5) == [found]
    assert [(e["event"], e["plugin"]) for e in logs] == [("plugin_discovery_failed", "broken")]

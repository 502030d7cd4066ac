"""The plugin host: finds, loads and isolates plugins, and exposes what they register.

There is no global plugin manager and nothing is loaded at import time: an application makes a
:class:`PluginHost` (usually with :meth:`PluginHost.from_installed`) and passes it on. A plugin
that fails to import, implements an unknown hook, or registers something invalid is recorded in
:attr:`PluginHost.plugins` with its error and left out; the others load. Users block plugins by
name with ``blocked=`` or the ``CAMHUB_DISABLED_PLUGINS`` environment variable (comma-separated).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from camhub import hookspecs
from camhub._version import __version__
from camhub.errors import PluginError
from camhub.log import get_logger
from camhub.model import DeviceConfig, StorageConfig

if TYPE_CHECKING:
    from camhub.adapter import DeviceAdapter, DiscoveredDevice
    from camhub.province import ProvinceConfig
    from camhub.storage import Storage

__all__ = [
    "ADAPTERS_GROUP",
    "PLUGINS_GROUP",
    "AdapterSpec",
    "PluginHost",
    "PluginInfo",
    "StorageBackendSpec",
]

ADAPTERS_GROUP = "camhub.adapters"
PLUGINS_GROUP = "camhub.plugins"
DISABLE_ENV = "CAMHUB_DISABLED_PLUGINS"
_REGISTRATION_HOOKS = ("camhub_register_adapters", "camhub_register_storage_backends")


@attrs.frozen(kw_only=True)
class AdapterSpec:
    """What an adapter plugin registers for one vendor.

    :param vendor: the YAML ``vendor:`` value (equal to the entry-point name).
    :param config_type: the device configuration class, a subclass of
        :class:`~camhub.model.DeviceConfig`.
    :param adapter_type: the :class:`~camhub.adapter.DeviceAdapter` subclass.
    :param description: one line for ``camhub plugins``.
    """

    vendor: str
    config_type: type[DeviceConfig]
    adapter_type: type[DeviceAdapter]
    description: str = ""


@attrs.frozen(kw_only=True)
class StorageBackendSpec:
    """What a storage plugin registers for one backend.

    :param name: the YAML ``backend:`` value.
    :param config_type: the backend configuration class, a subclass of
        :class:`~camhub.model.StorageConfig`.
    :param factory: opens the store from its configuration and the hub's data folder.
    :param description: one line for ``camhub plugins``.
    """

    name: str
    config_type: type[StorageConfig]
    factory: Callable[[StorageConfig, Path], Storage]
    description: str = ""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A plugin the host knows of, loaded or not, for ``camhub plugins``.

    :param name: the entry-point name (for adapters, the vendor).
    :param group: ``camhub.adapters`` or ``camhub.plugins``.
    :param distribution: the installed distribution that provides it.
    :param version: that distribution's version.
    :param status: ``loaded``, ``blocked`` (by the block list) or ``failed``.
    :param error: why it failed, in one line.
    :param provides: what it registered, e.g. ``vendor:hikvision``, ``storage:filesystem``.
    """

    name: str
    group: str
    distribution: str
    version: str
    status: str
    error: str = ""
    provides: tuple[str, ...] = ()


class _Manager(pluggy.PluginManager):
    """Takes every ``camhub_*`` function of a plugin as a hook implementation, marked or not
    (as pytest does), so a misspelt hook name is an error instead of silently ignored."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        is_hook_function = name.startswith(f"{hookspecs.PROJECT}_") and inspect.isroutine(
            getattr(plugin, name, None)
        )
        if opts is None and is_hook_function:
            return pluggy.HookimplOpts(
                wrapper=False,
                hookwrapper=False,
                optionalhook=False,
                tryfirst=False,
                trylast=False,
                specname=None,
            )
        return opts


class PluginHost:
    """One set of loaded plugins and what they registered.

    :param blocked: names of plugins not to load (added to ``CAMHUB_DISABLED_PLUGINS``).
    """

    def __init__(self, *, blocked: Iterable[str] = ()) -> None:
        self._pm = _Manager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        env_blocked = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")}
        #: Names of plugins that are not loaded (the argument and ``CAMHUB_DISABLED_PLUGINS``).
        self.blocked = frozenset(set(blocked) | env_blocked - {""})
        #: Every plugin the host met, in load order, with its status and any error.
        self.plugins: list[PluginInfo] = []
        self._adapters: dict[str, AdapterSpec] = {}
        self._storage: dict[str, StorageBackendSpec] = {}
        from camhub import _builtin

        self.add_plugin(_builtin, "builtin", group=PLUGINS_GROUP, distribution="camhub", version=__version__)

    @classmethod
    def from_installed(cls, *, blocked: Iterable[str] = ()) -> PluginHost:
        """A host with the built-in plugin and every installed, unblocked plugin loaded."""
        host = cls(blocked=blocked)
        host.load_installed()
        return host

    # -- loading ---------------------------------------------------------------------------
    def load_installed(self) -> None:
        """Load the plugins of both entry-point groups; failures are recorded, not raised."""
        for group in (ADAPTERS_GROUP, PLUGINS_GROUP):
            for ep in sorted(metadata.entry_points(group=group), key=lambda ep: ep.name):
                dist = ep.dist.name if ep.dist is not None else "?"
                version = ep.dist.version if ep.dist is not None else "?"
                if ep.name in self.blocked:
                    self.plugins.append(
                        PluginInfo(
                            name=ep.name, group=group, distribution=dist, version=version, status="blocked"
                        )
                    )
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
                    self._failed(ep.name, group, dist, version, f"cannot import {ep.value}: {exc!r}")
                    continue
                self.add_plugin(plugin, ep.name, group=group, distribution=dist, version=version)
        self._pm.check_pending()

    def add_plugin(
        self,
        plugin: object,
        name: str,
        *,
        group: str = PLUGINS_GROUP,
        distribution: str = "",
        version: str = "",
    ) -> bool:
        """Register ``plugin`` (a module or object with hook implementations) under ``name``.

        Returns True if it loaded; on failure the plugin is left out and the error recorded.
        In the ``camhub.adapters`` group the plugin must register exactly one adapter whose
        ``vendor`` is ``name``.
        """
        if name in self.blocked:
            self.plugins.append(
                PluginInfo(
                    name=name, group=group, distribution=distribution, version=version, status="blocked"
                )
            )
            return False
        try:
            self._pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._failed(name, group, distribution, version, str(exc))
            return False
        try:
            self._check_known_hooks(plugin)
            adapters, storage = self._collect(plugin)
            if group == ADAPTERS_GROUP and [spec.vendor for spec in adapters] != [name]:
                vendors = ", ".join(spec.vendor for spec in adapters) or "none"
                raise PluginError(
                    f"an adapter plugin registers exactly one adapter named like its entry point "
                    f"{name!r}; it registered: {vendors}"
                )
        except Exception as exc:  # noqa: BLE001 - a plugin's own failure is isolated
            self._pm.unregister(plugin)
            self._failed(name, group, distribution, version, str(exc) or repr(exc))
            return False
        self._adapters.update((spec.vendor, spec) for spec in adapters)
        self._storage.update((spec.name, spec) for spec in storage)
        provides = tuple(f"vendor:{s.vendor}" for s in adapters) + tuple(f"storage:{s.name}" for s in storage)
        self.plugins.append(
            PluginInfo(
                name=name,
                group=group,
                distribution=distribution,
                version=version,
                status="loaded",
                provides=provides,
            )
        )
        return True

    def _failed(self, name: str, group: str, dist: str, version: str, error: str) -> None:
        get_logger(__name__).warning("plugin_failed", plugin=name, group=group, error=error)
        self.plugins.append(
            PluginInfo(
                name=name, group=group, distribution=dist, version=version, status="failed", error=error
            )
        )

    def _check_known_hooks(self, plugin: object) -> None:
        """Per-plugin ``check_pending``: a ``camhub_*`` function that is no hook is a mistake."""
        for caller in self._pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                raise PluginError(f"unknown hook {caller.name!r}")

    def _collect(self, plugin: object) -> tuple[list[AdapterSpec], list[StorageBackendSpec]]:
        """Run ``plugin``'s registration hooks alone, checking what it registers."""
        from camhub.adapter import DeviceAdapter

        adapters: list[AdapterSpec] = []
        storage: list[StorageBackendSpec] = []

        def register_adapter(spec: AdapterSpec) -> None:
            if not isinstance(spec, AdapterSpec):
                raise PluginError(f"register() takes an AdapterSpec, got {type(spec).__name__}")
            if not (isinstance(spec.config_type, type) and issubclass(spec.config_type, DeviceConfig)):
                raise PluginError(f"adapter {spec.vendor!r}: config_type must subclass DeviceConfig")
            if not (isinstance(spec.adapter_type, type) and issubclass(spec.adapter_type, DeviceAdapter)):
                raise PluginError(f"adapter {spec.vendor!r}: adapter_type must subclass DeviceAdapter")
            if spec.vendor in self._adapters or any(s.vendor == spec.vendor for s in adapters):
                raise PluginError(f"vendor {spec.vendor!r} is already registered by another plugin")
            adapters.append(spec)

        def register_storage(spec: StorageBackendSpec) -> None:
            if not isinstance(spec, StorageBackendSpec):
                raise PluginError(f"register() takes a StorageBackendSpec, got {type(spec).__name__}")
            if not (isinstance(spec.config_type, type) and issubclass(spec.config_type, StorageConfig)):
                raise PluginError(f"backend {spec.name!r}: config_type must subclass StorageConfig")
            if not callable(spec.factory):
                raise PluginError(f"backend {spec.name!r}: factory must be callable")
            if spec.name in self._storage or any(s.name == spec.name for s in storage):
                raise PluginError(f"storage backend {spec.name!r} is already registered")
            storage.append(spec)

        registers: dict[str, Callable[[Any], None]] = {
            "camhub_register_adapters": register_adapter,
            "camhub_register_storage_backends": register_storage,
        }
        for hook_name in _REGISTRATION_HOOKS:
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(register=registers[hook_name])
        return adapters, storage

    # -- what the plugins provide ---------------------------------------------------------
    @property
    def adapters(self) -> Mapping[str, AdapterSpec]:
        """Registered adapters by vendor name."""
        return dict(self._adapters)

    @property
    def storage_backends(self) -> Mapping[str, StorageBackendSpec]:
        """Registered storage backends by name."""
        return dict(self._storage)

    def device_config_types(self) -> Mapping[str, type[DeviceConfig]]:
        """The ``vendor:``-tagged union of device configurations."""
        return {vendor: spec.config_type for vendor, spec in self._adapters.items()}

    def storage_config_types(self) -> Mapping[str, type[StorageConfig]]:
        """The ``backend:``-tagged union of storage configurations."""
        return {name: spec.config_type for name, spec in self._storage.items()}

    @property
    def load_errors(self) -> list[PluginInfo]:
        """The plugins that failed to load."""
        return [info for info in self.plugins if info.status == "failed"]

    # -- observer hooks --------------------------------------------------------------------
    def notify_config_loaded(self, config: ProvinceConfig) -> None:
        """Tell observers a configuration was loaded (an observer's exception is logged)."""
        self._observe("camhub_config_loaded", config=config)

    def notify_hub_started(self, hub: object) -> None:
        """Tell observers a hub started (an observer's exception is logged)."""
        self._observe("camhub_hub_started", hub=hub)

    def notify_hub_stopping(self, hub: object) -> None:
        """Tell observers a hub is stopping (an observer's exception is logged)."""
        self._observe("camhub_hub_stopping", hub=hub)

    def notify_segment_sealed(self, segment: object) -> None:
        """Tell observers a segment was sealed and catalogued (an observer's exception is logged)."""
        self._observe("camhub_segment_sealed", segment=segment)

    def discover(self, interface: str, timeout: float) -> list[DiscoveredDevice]:
        """Devices found by every discovery plugin (a plugin that fails is logged, not fatal)."""
        found: list[DiscoveredDevice] = []
        for impl in self._pm.hook.camhub_discover_devices.get_hookimpls():
            try:
                answer = impl.function(interface=interface, timeout=timeout)
                found.extend(cast("list[DiscoveredDevice]", answer or []))
            except Exception as exc:  # noqa: BLE001 - one plugin's failure must not hide the others
                get_logger(__name__).error(
                    "plugin_discovery_failed", plugin=impl.plugin_name, interface=interface, error=repr(exc)
                )
        return found

    def _observe(self, hook_name: str, **kwargs: Any) -> None:
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**kwargs)
            except Exception as exc:  # noqa: BLE001 - observers must not break the caller
                get_logger(__name__).error(
                    "plugin_observer_failed", plugin=impl.plugin_name, hook=hook_name, error=repr(exc)
                )

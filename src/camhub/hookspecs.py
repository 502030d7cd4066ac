"""The hooks camhub plugins implement: every extension point of camhub, typed and documented.

Plugins are found through two entry-point groups: ``camhub.adapters`` (device adapters; the
entry-point name is the YAML ``vendor:`` value) and ``camhub.plugins`` (everything else). The
entry point names a module or object whose functions are marked with :data:`hookimpl`::

    from camhub.hookspecs import hookimpl

    @hookimpl
    def camhub_register_adapters(register):
        register(AdapterSpec(vendor="acme", config_type=AcmeConfig, adapter_type=AcmeAdapter))

Registration hooks receive a ``register`` callable and are called once per plugin when the
:class:`~camhub.plugins.PluginHost` loads it; a plugin whose registration fails is reported
and left out, never fatal. Observer hooks are told about events; an observer that raises is
logged and the others still run. Hooks are synchronous. Hooks only grow: one is removed only
after a release that warns with a named deprecation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from camhub.adapter import DiscoveredDevice
    from camhub.hub import Hub
    from camhub.plugins import AdapterSpec, StorageBackendSpec
    from camhub.province import ProvinceConfig

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "camhub"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def camhub_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register device adapters: the classes that talk to one vendor's devices.

    Called once per plugin, when the plugin host loads the plugin. Implemented by adapter
    distributions (entry-point group ``camhub.adapters``), where the entry-point name must equal
    the ``vendor`` of the one adapter the plugin registers.

    :param register: call it with an :class:`~camhub.plugins.AdapterSpec` for each adapter.
        Its ``config_type`` becomes a member of the ``vendor:``-tagged union of device
        configurations, so YAML devices of that vendor are validated against it.

    .. versionadded:: 0.1.0
    """


@hookspec
def camhub_register_storage_backends(register: Callable[[StorageBackendSpec], None]) -> None:
    """Register storage backends: where footage is kept (a folder, an S3-compatible cluster).

    Called once per plugin, when the plugin host loads the plugin. Implemented by storage
    plugins (entry-point group ``camhub.plugins``) and by camhub itself for the built-in
    ``filesystem`` backend.

    :param register: call it with a :class:`~camhub.plugins.StorageBackendSpec` for each
        backend. Its ``config_type`` becomes a member of the ``backend:``-tagged union of
        ``storage.central``.

    .. versionadded:: 0.1.0
    """


@hookspec
def camhub_config_loaded(config: ProvinceConfig) -> None:
    """Observe a configuration that was loaded and passed every check.

    Called by :func:`camhub.load_config` after validation, before the configuration is used.
    Any plugin may implement it, e.g. to check its own site conventions and log warnings;
    raising does not reject the configuration (it is logged).

    :param config: the validated province.

    .. versionadded:: 0.1.0
    """


@hookspec
def camhub_discover_devices(interface: str, timeout: float) -> list[DiscoveredDevice]:
    """Find devices on a network segment with a discovery protocol the plugin speaks.

    Called by ``camhub discover`` (and :meth:`camhub.plugins.PluginHost.discover`); the lists
    of every implementing plugin are joined. Implemented by adapters whose devices can be
    discovered (the ONVIF adapter answers with WS-Discovery). A plugin that raises is logged
    and the others still answer.

    :param interface: the local IPv4 address whose network to search (e.g. ``192.168.1.5``).
    :param timeout: seconds to listen for answers.
    :return: the devices found.

    .. versionadded:: 0.1.0
    """
    return []


@hookspec
def camhub_hub_started(hub: Hub) -> None:
    """Observe a hub that has started recording.

    Called by :meth:`camhub.hub.Hub.run` once its spool is recovered and before its recorders
    start. Any plugin may implement it (e.g. a notifier announcing the hub is up); raising is
    logged and does not stop the hub.

    :param hub: the hub; ``hub.province`` and ``hub.settings`` say what it records.

    .. versionadded:: 0.1.0
    """


@hookspec
def camhub_hub_stopping(hub: Hub) -> None:
    """Observe a hub that is stopping (SIGINT, SIGTERM or its caller's stop).

    Called by :meth:`camhub.hub.Hub.run` before it seals the open segments. Raising is logged.

    :param hub: the hub.

    .. versionadded:: 0.1.0
    """


@hookspec
def camhub_segment_sealed(segment: object) -> None:
    """Observe a segment that was sealed and entered in the catalog.

    Called from the recorder's thread right after the catalog row is written, so keep it short
    (queue work elsewhere). Any plugin may implement it; raising is logged.

    :param segment: the catalog's record of the segment (a ``camhub.catalog.SegmentRecord``).

    .. versionadded:: 0.1.0
    """

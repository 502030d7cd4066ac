"""The `dahua` adapter registers through the installed entry point and validates its devices."""

from __future__ import annotations

import pytest

from camhub import ConfigError, PluginHost, load_config_text
from camhub_dahua import DahuaAdapter, DahuaConfig

CONFIG = """
province: {id: p, name: Tỉnh Thử}
levels: [{id: province, name: Tỉnh}]
bodies: [{id: hcc, name: Trung tâm HCC, level: province, article5: "5.3"}]
credentials: {site: {username: admin, password: {$env: CAMHUB_TEST_PW}}}
units:
  - id: p
    name: Tỉnh Thử
    level: province
    managing_body: hcc
    devices:
      - {id: d1, vendor: dahua, kind: camera, host: 127.0.0.1, credentials: site%s}
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CAMHUB_TEST_PW", "s3cret-dahua")
    return PluginHost.from_installed()


def test_registered_through_entry_point(host: PluginHost) -> None:
    spec = host.adapters["dahua"]
    assert spec.config_type is DahuaConfig
    assert spec.adapter_type is DahuaAdapter
    info = next(p for p in host.plugins if p.name == "dahua")
    assert (info.status, info.distribution) == ("loaded", "camhub-dahua")


def test_device_config_is_read_into_vendor_class(host: PluginHost) -> None:
    config = load_config_text(CONFIG % "", host=host)
    device = config.device("d1")
    assert isinstance(device, DahuaConfig)
    assert device.unit == "p"
    assert "s3cret" not in repr(config)


def test_unknown_vendor_key_is_rejected(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % ", bogus_key: 1", name="p.yaml", host=host)
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:12: $.units[0].devices[0].bogus_key: unknown key 'bogus_key'"
    ]


def test_dahua_settings_are_read_and_checked(host: PluginHost) -> None:
    device = load_config_text(CONFIG % ", timeout: 2.5, event_heartbeat: 2", host=host).device("d1")
    assert isinstance(device, DahuaConfig)
    assert (device.timeout, device.event_heartbeat) == (2.5, 2)
    assert (
        DahuaConfig.__attrs_attrs__.timeout.default,
        DahuaConfig.__attrs_attrs__.event_heartbeat.default,
    ) == (
        10.0,
        5,
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % ", timeout: 0, event_heartbeat: 61", name="p.yaml", host=host)
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:12: $.units[0].devices[0].event_heartbeat: must be at most 60, got 61",
        "p.yaml:12: $.units[0].devices[0].timeout: must be at least 0.1, got 0.0",
    ]

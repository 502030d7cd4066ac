"""The `hikvision` adapter registers through the installed entry point and validates its devices."""

from __future__ import annotations

import pytest

from camhub import ConfigError, PluginHost, load_config_text
from camhub_hikvision import HikvisionAdapter, HikvisionConfig
from camhub_hikvision.config import RecordingClock

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
      - {id: d1, vendor: hikvision, kind: camera, host: 127.0.0.1, credentials: site%s}
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CAMHUB_TEST_PW", "s3cret-hikvision")
    return PluginHost.from_installed()


def test_registered_through_entry_point(host: PluginHost) -> None:
    spec = host.adapters["hikvision"]
    assert spec.config_type is HikvisionConfig
    assert spec.adapter_type is HikvisionAdapter
    info = next(p for p in host.plugins if p.name == "hikvision")
    assert (info.status, info.distribution) == ("loaded", "camhub-hikvision")


def test_device_config_is_read_into_vendor_class(host: PluginHost) -> None:
    config = load_config_text(CONFIG % "", host=host)
    device = config.device("d1")
    assert isinstance(device, HikvisionConfig)
    assert device.unit == "p"
    assert "s3cret" not in repr(config)


def test_unknown_vendor_key_is_rejected(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % ", bogus_key: 1", name="p.yaml", host=host)
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:12: $.units[0].devices[0].bogus_key: unknown key 'bogus_key'"
    ]


def test_hikvision_settings_are_read_and_checked(host: PluginHost) -> None:
    keys = ", timeout: 3.5, event_idle_timeout: 45, recording_clock: local"
    device = load_config_text(CONFIG % keys, host=host).device("d1")
    assert isinstance(device, HikvisionConfig)
    assert (device.timeout, device.event_idle_timeout, device.recording_clock) == (
        3.5,
        45.0,
        RecordingClock.LOCAL,
    )
    defaults = load_config_text(CONFIG % "", host=host).device("d1")
    assert isinstance(defaults, HikvisionConfig)
    assert (defaults.timeout, defaults.event_idle_timeout) == (10.0, 30.0)
    assert defaults.recording_clock is RecordingClock.UTC
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % ", timeout: 0, recording_clock: gmt", name="p.yaml", host=host)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == ["$.units[0].devices[0].recording_clock", "$.units[0].devices[0].timeout"]

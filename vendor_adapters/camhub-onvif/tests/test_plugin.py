"""The `onvif` adapter registers through the installed entry point and validates its devices."""

from __future__ import annotations

import pytest

from camhub import ConfigError, PluginHost, load_config_text
from camhub_onvif import OnvifAdapter, OnvifConfig

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
      - {id: d1, vendor: onvif, kind: camera, host: 127.0.0.1, credentials: site%s}
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("CAMHUB_TEST_PW", "s3cret-onvif")
    return PluginHost.from_installed()


def test_registered_through_entry_point(host: PluginHost) -> None:
    spec = host.adapters["onvif"]
    assert spec.config_type is OnvifConfig
    assert spec.adapter_type is OnvifAdapter
    info = next(p for p in host.plugins if p.name == "onvif")
    assert (info.status, info.distribution) == ("loaded", "camhub-onvif")


def test_device_config_is_read_into_vendor_class(host: PluginHost) -> None:
    config = load_config_text(CONFIG % "", host=host)
    device = config.device("d1")
    assert isinstance(device, OnvifConfig)
    assert device.unit == "p"
    assert "s3cret" not in repr(config)


def test_unknown_vendor_key_is_rejected(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % ", bogus_key: 1", name="p.yaml", host=host)
    assert [str(i) for i in caught.value.issues] == [
        "p.yaml:12: $.units[0].devices[0].bogus_key: unknown key 'bogus_key'"
    ]

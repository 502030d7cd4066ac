"""What every adapter should prove first: it is installed, registered, and validates its config."""

from __future__ import annotations

import pytest

from camhub import ConfigError, PluginHost, load_config_text
from camhub_toy import ToyAdapter, ToyConfig

CONFIG = """
province: {id: p, name: Tỉnh Thử}
levels: [{id: province, name: Tỉnh}]
bodies: [{id: hcc, name: Trung tâm HCC, level: province, article5: "5.3"}]
credentials: {site: {username: admin, password: {$env: TOY_PASSWORD}}}
units:
  - id: p
    name: Tỉnh Thử
    level: province
    managing_body: hcc
    devices:
      - {id: toy-1, vendor: toy, kind: camera, host: 127.0.0.1, credentials: site, %s}
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.setenv("TOY_PASSWORD", "toy-password")
    monkeypatch.setenv("TOY_TOKEN", "toy-token-123")
    return PluginHost.from_installed()


def test_toy_is_an_installed_adapter(host: PluginHost) -> None:
    assert host.adapters["toy"].adapter_type is ToyAdapter


def test_toy_config_takes_its_token_as_a_secret(host: PluginHost) -> None:
    device = load_config_text(CONFIG % "api_token: {$env: TOY_TOKEN}", host=host).device("toy-1")
    assert isinstance(device, ToyConfig)
    assert device.api_token.reveal() == "toy-token-123"
    assert "toy-token-123" not in repr(device)


def test_toy_config_requires_its_token(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG % "port: 8080", name="toy.yaml", host=host)
    assert str(caught.value) == "toy.yaml:12: $.units[0].devices[0]: missing required key 'api_token'"

"""The JSON Schema agrees with the loader: valid configurations pass it, broken ones fail it."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from camhub import PluginHost, json_schema
from provinces import BASE


@pytest.fixture(scope="module")
def validator(host: PluginHost) -> jsonschema.Draft202012Validator:
    schema = json_schema(host)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_valid_province_passes(validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(yaml.safe_load(BASE))) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("host: 127.0.0.1,", "host: 127.0.0.1, port: http,"),
        ("kind: camera,", "kind: webcam,"),
        ("vendor: hikvision", "vendor: axis"),
        ("credentials: site}", "credentials: site, colour: red}"),
        ("password: {$env: CAMHUB_TEST_PASSWORD}", "password: plain-text"),
        ("{id: cam-1,", "{id: Cam 1,"),
    ],
)
def test_broken_province_fails(validator: jsonschema.Draft202012Validator, old: str, new: str) -> None:
    assert old in BASE
    assert list(validator.iter_errors(yaml.safe_load(BASE.replace(old, new, 1))))


def test_retention_floor_in_schema(validator: jsonschema.Draft202012Validator) -> None:
    tree = yaml.safe_load(BASE)
    tree["retention"] = {"central_days": 6}
    assert [e.message for e in validator.iter_errors(tree)] == ["6 is less than the minimum of 7"]


def test_vendor_members_carry_their_own_keys(host: PluginHost) -> None:
    defs = json_schema(host)["$defs"]
    assert defs["DeviceConfig.onvif"]["properties"]["vendor"] == {
        "const": "onvif",
        "description": "Which adapter talks to the device: the name of an installed adapter, e.g. `hikvision`.",
    }
    assert "auth" in defs["DeviceConfig.onvif"]["properties"]
    assert "auth" not in defs["DeviceConfig.hikvision"]["properties"]
    assert "api_token" in defs["DeviceConfig.toy"]["properties"]

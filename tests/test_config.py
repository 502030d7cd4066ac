"""The YAML loader: strict reading, located errors, cross-checks, includes and secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from camhub import (
    Article5Point,
    ChannelKind,
    ConfigError,
    PluginHost,
    ProvinceConfig,
    Secret,
    load_config,
    load_config_text,
)
from provinces import BASE, PASSWORD

Write = Callable[..., Path]


def load(text: str, host: PluginHost) -> ProvinceConfig:
    return load_config_text(text, name="p.yaml", host=host)


def errors(text: str, host: PluginHost) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, host)
    return [str(issue) for issue in caught.value.issues]


def test_base_province_loads(host: PluginHost) -> None:
    config = load(BASE, host)
    assert [unit.id for _, unit in config.walk()] == ["thu", "huyen-a", "xa-b"]
    assert config.device("cam-1").unit == "xa-b"
    assert config.unit("xa-b").name == "Xã Phú Điền"
    assert [u.id for u in config.ancestors("xa-b")] == ["huyen-a", "thu"]
    assert [u.id for u in config.subtree("huyen-a")] == ["huyen-a", "xa-b"]
    assert config.credentials["site"].password.reveal() == PASSWORD
    person = config.people[0]
    assert config.article5_points(person) == {Article5Point.PROVINCE}


def test_two_tier_province_runs_from_configuration(host: PluginHost) -> None:
    """Since July 2025 there is no district level: the same code takes a two-level tree."""
    text = """\
province: {id: dn, name: Tỉnh Đồng Nai}
levels: [{id: province, name: Tỉnh}, {id: commune, name: Xã / phường}]
bodies:
  - {id: hcc, name: Trung tâm Phục vụ hành chính công tỉnh, level: province, article5: "5.3"}
  - {id: ubnd-xa, name: UBND xã, level: commune, article5: "5.3"}
units:
  - {id: dn, name: Tỉnh Đồng Nai, level: province, managing_body: hcc}
  - id: bien-hoa
    name: Phường Biên Hòa
    level: commune
    parent: dn
    managing_body: ubnd-xa
    merged_from:
      - {id: bien-hoa.tan-hanh, name: Phường Tân Hạnh}
      - {id: bien-hoa.hoa-an, name: Phường Hóa An}
"""
    config = load(text, host)
    assert config.unit("bien-hoa").parent == "dn"
    assert [p.name for p in config.unit("bien-hoa").merged_from] == ["Phường Tân Hạnh", "Phường Hóa An"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "host: 127.0.0.1, credentials",
            "host: 127.0.0.1, port: http, credentials",
            "p.yaml:23: $.units[2].devices[0].port: expected an integer, got 'http'",
            id="type",
        ),
        pytest.param(
            "host: 127.0.0.1, credentials",
            "host: 127.0.0.1, port: 70000, credentials",
            "p.yaml:23: $.units[2].devices[0].port: must be at most 65535, got 70000",
            id="range",
        ),
        pytest.param(
            "kind: camera, host",
            "kind: camera, colour: red, host",
            "p.yaml:23: $.units[2].devices[0].colour: unknown key 'colour'",
            id="unknown-key",
        ),
        pytest.param(
            "vendor: hikvision",
            "vendor: axis",
            "p.yaml:23: $.units[2].devices[0].vendor: unknown vendor 'axis'; "
            "installed: dahua, hikvision, onvif, rtsp, toy",
            id="unknown-vendor",
        ),
        pytest.param(
            "kind: camera",
            "kind: webcam",
            "p.yaml:23: $.units[2].devices[0].kind: expected one of camera, nvr, dvr, encoder; got 'webcam'",
            id="enum",
        ),
        pytest.param(
            "{id: huyen-a, name: Huyện Định Quán, level: district, parent: thu,",
            "{id: xa-b, name: Huyện Định Quán, level: district, parent: thu,",
            "p.yaml:17: $.units[2].id: duplicate unit id 'xa-b' (first at p.yaml:16)",
            id="duplicate-id",
        ),
        pytest.param(
            "parent: huyen-a",
            "parent: huyen-z",
            "p.yaml:20: $.units[2].parent: unknown unit 'huyen-z'",
            id="missing-parent",
        ),
        pytest.param(
            "parent: huyen-a",
            "parent: xa-b",
            "p.yaml:20: $.units[2].parent: the unit tree has a cycle: xa-b → xa-b",
            id="cycle",
        ),
        pytest.param(
            "level: district, parent: thu,",
            "level: district,",
            "p.yaml:16: $.units[1]: two roots: unit 'huyen-a' has no parent, but 'thu' (p.yaml:15) "
            "is already the root; give it a parent",
            id="two-roots",
        ),
        pytest.param(
            "level: commune\n    parent: huyen-a",
            "level: commune\n    parent: thu",
            "p.yaml:20: $.units[2].parent: a 'commune' cannot be under a 'province' ('thu'); "
            "its parent must be a 'district'",
            id="skipped-level",
        ),
        pytest.param(
            "{body: vp-ubnd-tinh, unit: thu",
            "{body: vp-ubnd-tinh, unit: nowhere",
            "p.yaml:27: $.people[0].positions[0].unit: unknown unit 'nowhere'",
            id="position-unit",
        ),
        pytest.param(
            "{body: vp-ubnd-tinh, unit: thu",
            "{body: vp-ubnd-tinh, unit: xa-b",
            "p.yaml:27: $.people[0].positions[0].unit: body 'vp-ubnd-tinh' sits at level 'province', "
            "but unit 'xa-b' is a 'commune'",
            id="position-level",
        ),
        pytest.param(
            "credentials: site}",
            "credentials: other}",
            "p.yaml:23: $.units[2].devices[0].credentials: unknown credentials 'other'; known: site",
            id="credentials",
        ),
        pytest.param(
            'article5: "5.2"',
            'article5: "5.9"',
            "p.yaml:10: $.bodies[3].article5: expected one of 5.1, 5.2, 5.3; got '5.9'",
            id="article5",
        ),
        pytest.param(
            "name: Tỉnh Thử Nghiệm}",
            "name: 42}",
            "p.yaml:1: $.province.name: expected a string, got 42 (put it in quotes)",
            id="strict-str",
        ),
        pytest.param(
            "id: cam-1,",
            "id: Cam 1,",
            "p.yaml:23: $.units[2].devices[0].id: 'Cam 1' is not a valid identifier (lowercase letters, "
            "digits, '.', '_' and '-', starting with a letter or digit)",
            id="id-pattern",
        ),
    ],
)
def test_each_mistake_is_one_located_line(host: PluginHost, old: str, new: str, expected: str) -> None:
    assert old in BASE
    assert errors(BASE.replace(old, new, 1), host) == [expected]


def test_article5_province_point_needs_a_top_level_body(host: PluginHost) -> None:
    text = BASE.replace('level: province, article5: "5.1"', 'level: district, article5: "5.1"')
    assert errors(text, host) == [
        "p.yaml:8: $.bodies[1].article5: Article 5.1 covers the whole province; body 'vp-ubnd-tinh' "
        "must sit at the top level 'province', not 'district'",
        "p.yaml:27: $.people[0].positions[0].unit: body 'vp-ubnd-tinh' sits at level 'district', "
        "but unit 'thu' is a 'province'",
    ]


def test_retention_floor_is_seven_days(host: PluginHost) -> None:
    assert errors(BASE + "retention: {central_days: 6}\n", host) == [
        "p.yaml:28: $.retention.central_days: must be at least 7 (Article 6.2: footage stays "
        "retrievable centrally for at least 7 days), got 6"
    ]
    assert load(BASE + "retention: {central_days: 7}\n", host).retention.central_days == 7


def test_cycle_is_reported_once(host: PluginHost) -> None:
    text = BASE.replace("parent: thu,", "parent: xa-b,")
    assert errors(text, host) == [
        "p.yaml:16: $.units[1].parent: the unit tree has a cycle: huyen-a → xa-b → huyen-a"
    ]


def test_device_listed_under_one_unit_naming_another(host: PluginHost) -> None:
    text = BASE.replace("kind: camera, host", "kind: camera, unit: thu, host")
    assert errors(text, host) == [
        "p.yaml:23: $.units[2].devices[0].unit: device is listed under unit 'xa-b' but names unit 'thu'"
    ]


def test_top_level_device_must_name_its_unit(host: PluginHost) -> None:
    text = BASE + "devices:\n  - {id: cam-9, vendor: dahua, kind: nvr, host: 10.0.0.9, credentials: site}\n"
    assert errors(text, host) == [
        "p.yaml:29: $.devices[0]: missing required key 'unit' (devices listed at the top level name their unit)"
    ]
    ok = load(text.replace("kind: nvr,", "kind: nvr, unit: huyen-a,"), host)
    assert [d.id for d in ok.devices_of("huyen-a")] == ["cam-9"]


def test_yaml_syntax_error_is_located(host: PluginHost) -> None:
    (issue,) = errors(BASE.replace("- {id: hcc,", "- {id: hcc,,"), host)
    assert issue.startswith("p.yaml:7: $: invalid YAML: ")


def test_duplicate_yaml_key_is_an_error(host: PluginHost) -> None:
    text = BASE.replace("province: {id: thu, name: Tỉnh Thử Nghiệm}", "province: {id: thu, name: A, name: B}")
    assert errors(text, host) == ["p.yaml:1: $.province.name: duplicate key"]


def test_empty_and_non_mapping_files(host: PluginHost) -> None:
    assert errors("", host) == ["p.yaml:1: $: the file is empty"]
    assert errors("- a\n- b\n", host) == ["p.yaml:1: $: expected a mapping, got a list"]


def test_missing_file_names_the_file(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", host=host)
    assert (
        str(caught.value) == f"{tmp_path / 'nope.yaml'}: $: cannot read the file: No such file or directory"
    )


def test_channels_and_audio(host: PluginHost) -> None:
    text = BASE.replace(
        "credentials: site}",
        "credentials: site, channels: [{id: 1, audio: true}, {id: 2, kind: microphone, name: Quầy 1}]}",
    )
    device = load(text, host).device("cam-1")
    assert [(c.id, c.kind, c.has_audio) for c in device.channels] == [
        (1, ChannelKind.CAMERA, True),
        (2, ChannelKind.MICROPHONE, True),
    ]
    dup = text.replace("{id: 2, kind: microphone", "{id: 1, kind: microphone")
    assert errors(dup, host) == [
        "p.yaml:23: $.units[2].devices[0].channels[1].id: duplicate channel 1 on device 'cam-1'"
    ]


def test_merge_keys_and_anchors_work(host: PluginHost) -> None:
    text = BASE.replace(
        "      - {id: cam-1, vendor: hikvision, kind: camera, host: 127.0.0.1, credentials: site}",
        "      - &cam {id: cam-1, vendor: hikvision, kind: camera, host: 127.0.0.1, credentials: site}\n"
        "      - {<<: *cam, id: cam-2, host: 127.0.0.2}",
    )
    config = load(text, host)
    assert [(d.id, d.host, d.vendor) for d in config.devices] == [
        ("cam-1", "127.0.0.1", "hikvision"),
        ("cam-2", "127.0.0.2", "hikvision"),
    ]


# -- includes -----------------------------------------------------------------------------------
def test_includes_are_merged_and_errors_name_the_included_file(host: PluginHost, write: Write) -> None:
    main = write(BASE + "include: [districts/b.yaml]\n")
    write(
        """\
        units:
          - {id: huyen-b, name: Huyện Xuân Lộc, level: district, parent: thu, managing_body: ubnd-huyen}
          - id: xa-c
            name: Xã Xuân Hòa
            level: commune
            parent: huyen-b
            managing_body: ubnd-xa
            devices:
              - {id: cam-2, vendor: onvif, kind: camera, host: 127.0.0.1, credentials: site}
        """,
        "districts/b.yaml",
    )
    config = load_config(main, host=host)
    assert [u.id for u in config.subtree("huyen-b")] == ["huyen-b", "xa-c"]
    assert config.sources == (str(main), str(main.parent / "districts/b.yaml"))

    write(
        "units:\n  - {id: huyen-b, name: X, level: district, parent: thu, managing_body: nobody}\n",
        "districts/b.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(main, host=host)
    assert [str(i) for i in caught.value.issues] == [
        f"{main.parent / 'districts/b.yaml'}:2: $.units[0].managing_body: unknown body 'nobody'"
    ]


def test_include_cycle_and_missing_include(host: PluginHost, write: Write) -> None:
    main = write(BASE + "include: [a.yaml, missing.yaml]\n")
    write("include: [a.yaml]\n", "a.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(main, host=host)
    a = main.parent / "a.yaml"
    assert [str(i) for i in caught.value.issues] == [
        f"{a}:1: $.include[0]: a.yaml includes itself (cycle)",
        f"{main}:28: $.include[1]: cannot read {main.parent / 'missing.yaml'}: No such file or directory",
    ]


def test_included_file_cannot_redefine_the_province(host: PluginHost, write: Write) -> None:
    main = write(BASE + "include: [a.yaml]\n")
    write("province: {id: x, name: X}\n", "a.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(main, host=host)
    assert str(caught.value) == (
        f"{main.parent / 'a.yaml'}:1: $.province: unknown key 'province'; "
        "allowed here: include, credentials, units, devices, people"
    )


# -- secrets ------------------------------------------------------------------------------------
def test_secret_from_file_relative_to_config(host: PluginHost, write: Write) -> None:
    write("file-secret\n", "secrets/pw")
    main = write(BASE.replace("{$env: CAMHUB_TEST_PASSWORD}", "{$file: secrets/pw}"))
    config = load_config(main, host=host)
    assert config.credentials["site"].password.reveal() == "file-secret"
    assert config.credentials["site"].password.source == "$file:secrets/pw"


def test_missing_secret_is_a_clear_error(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMHUB_TEST_PASSWORD")
    assert errors(BASE, host) == [
        "p.yaml:13: $.credentials.site.password: environment variable CAMHUB_TEST_PASSWORD is not set"
    ]
    text = BASE.replace("{$env: CAMHUB_TEST_PASSWORD}", "{$file: no/such/file}")
    assert errors(text, host) == [
        "p.yaml:13: $.credentials.site.password: secret file no/such/file cannot be read: No such file or directory"
    ]


def test_plain_text_password_is_refused_without_echoing_it(host: PluginHost) -> None:
    text = BASE.replace("{$env: CAMHUB_TEST_PASSWORD}", "hunter2-plain")
    (issue,) = errors(text, host)
    assert issue == (
        "p.yaml:13: $.credentials.site.password: a secret must be a reference: "
        "{$env: NAME} or {$file: path}, not a plain value"
    )
    assert "hunter2" not in issue


def test_secret_never_in_repr_str_or_format() -> None:
    secret = Secret("s3cr3t-value", "$env:X")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
        assert "s3cr3t" not in shown
    assert secret.reveal() == "s3cr3t-value"


def test_secret_never_in_config_repr(host: PluginHost) -> None:
    config = load(BASE, host)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in repr(config.credentials)

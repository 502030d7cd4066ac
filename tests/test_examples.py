"""The example provinces load, hold what they promise, and keep their Vietnamese names intact."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from camhub import Article5Point, ChannelKind, PluginHost, ProvinceConfig, load_config
from provinces import EXAMPLES

TOP_LEVEL = sorted(EXAMPLES.glob("*.yaml"))  # included fragments live in sub-folders


@pytest.fixture(scope="module")
def provinces(host: PluginHost) -> dict[str, ProvinceConfig]:
    return {path.stem: load_config(path, host=host) for path in TOP_LEVEL}


def test_every_example_is_checked() -> None:
    assert [p.name for p in TOP_LEVEL] == ["demo.yaml", "dong-nai-2025.yaml", "dong-nai.yaml"]


def test_demo_is_a_small_three_tier_province(provinces: dict[str, ProvinceConfig]) -> None:
    demo = provinces["demo"]
    assert Counter(u.level for u in demo.units) == {"province": 1, "district": 2, "commune": 4}
    vendors = Counter(d.vendor for d in demo.devices)
    assert set(vendors) == {"hikvision", "dahua", "onvif"}
    channels = [c for d in demo.devices for c in d.effective_channels()]
    assert any(c.kind is ChannelKind.MICROPHONE for c in channels)
    assert any(c.audio for c in channels)


def test_dong_nai_2021_2024_has_its_real_units(provinces: dict[str, ProvinceConfig]) -> None:
    dn = provinces["dong-nai"]
    assert Counter(u.level for u in dn.units) == {"province": 1, "district": 11, "commune": 170}
    assert len(dn.sources) == 12  # the main file and one file per district
    bien_hoa = [u.name for u in dn.children("bien-hoa")]
    assert len(bien_hoa) == 30
    assert "Phường Trảng Dài" in bien_hoa
    assert dn.unit("tan-phu.dak-lua").name == "Xã Đak Lua"


def test_dong_nai_2025_is_two_tier_with_predecessors(provinces: dict[str, ProvinceConfig]) -> None:
    dn = provinces["dong-nai-2025"]
    assert [level.id for level in dn.levels] == ["province", "commune"]
    communes = [u for u in dn.units if u.level == "commune"]
    assert len(communes) == 95
    assert all(u.parent == dn.root.id for u in communes)
    assert all(u.merged_from for u in communes)
    old_ids = {u.id for u in provinces["dong-nai"].units}
    carried = {p.id for u in communes for p in u.merged_from} & old_ids
    assert len(carried) > 150, "most 2021-2024 communes must be named as predecessors"


@pytest.mark.parametrize("name", ["demo", "dong-nai", "dong-nai-2025"])
def test_every_site_has_two_to_eight_devices_and_article5_leaders(
    provinces: dict[str, ProvinceConfig], name: str
) -> None:
    province = provinces[name]
    for unit in province.units:
        assert 2 <= len(province.devices_of(unit.id)) <= 8, unit.id
    held = Counter(p for person in province.people for p in province.article5_points(person))
    assert held[Article5Point.PROVINCE] >= 3  # Office, Home Affairs, Police leaders
    assert held[Article5Point.SITE] >= 1


@pytest.mark.parametrize("name", ["demo", "dong-nai", "dong-nai-2025"])
def test_vietnamese_names_survive_in_nfc(provinces: dict[str, ProvinceConfig], name: str) -> None:
    names = [u.name for u in provinces[name].units] + [p.name for p in provinces[name].people]
    assert all(unicodedata.is_normalized("NFC", n) for n in names)
    assert any(ch in "ăâđêôơưĂÂĐÊÔƠƯ" for n in names for ch in n)

"""Write a large synthetic province for the configuration-loading benchmark.

The province has the shape of a real three-tier one: a provincial centre, districts of about
fifteen communes each, 2–8 devices per site (some recorders with several channels, some with
sound, a few microphones), and the leaders Article 5 names at every unit. It grows until it
holds exactly the number of devices asked for. Everything is seeded, so a size always gives
the same file. Usage::

    python benchmarks/make_big_province.py [--devices 2000] [PATH]

The device password is a ``$file`` reference to ``secrets/bench-password`` beside the file,
which is written too, so the result loads with ``camhub.load_config`` without setup.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Iterator
from pathlib import Path

COMMUNES_PER_DISTRICT = 15
SECRET = "secrets/bench-password"
VENDORS = ("hikvision", "dahua", "onvif")
PLACES = ("Lối vào", "Sảnh chờ", "Khu lấy số thứ tự", "Khu trả kết quả", "Hành lang", "Bãi đỗ xe")
DISTRICT_KINDS = (("thành phố", "Thành phố"), ("huyện", "Huyện"), ("thị xã", "Thị xã"))
COMMUNE_KINDS = (("phường", "Phường"), ("xã", "Xã"), ("thị trấn", "Thị trấn"))
#: Syllables for place names with diacritics, so the benchmark reads real-looking UTF-8.
SYLLABLES = ("Tân", "Phú", "Hòa", "Bình", "Long", "Xuân", "Đông", "Sơn", "Thạnh", "Lộc", "An", "Hưng")

HEAD = """\
# A synthetic province for the loading benchmark, written by benchmarks/make_big_province.py.
camhub: 1
province: {{id: bench, name: Tỉnh Thử Tải}}
levels:
  - {{id: province, name: Tỉnh}}
  - {{id: district, name: Huyện / thị xã / thành phố}}
  - {{id: commune, name: Xã / phường / thị trấn}}
bodies:
  - {{id: vp-ubnd-tinh, name: Văn phòng UBND tỉnh, level: province, article5: "5.1"}}
  - {{id: so-noi-vu, name: Sở Nội vụ, level: province, article5: "5.1", roles: [home_affairs]}}
  - {{id: cong-an-tinh, name: Công an tỉnh, level: province, article5: "5.1"}}
  - {{id: hcc, name: Trung tâm Hành chính công tỉnh, level: province, article5: "5.3"}}
  - {{id: so-khcn, name: Sở Khoa học và Công nghệ, level: province, roles: [ict]}}
  - {{id: ubnd-huyen, name: UBND huyện, level: district, article5: "5.2"}}
  - {{id: phong-noi-vu, name: Phòng Nội vụ, level: district, article5: "5.2"}}
  - {{id: vp-ubnd-huyen, name: Văn phòng HĐND và UBND huyện, level: district, article5: "5.2"}}
  - {{id: mot-cua-huyen, name: Bộ phận một cửa huyện, level: district, article5: "5.3"}}
  - {{id: ubnd-xa, name: UBND xã, level: commune, article5: "5.3"}}
credentials:
  site: {{username: admin, password: {{$file: {secret}}}}}
storage:
  central: {{backend: filesystem, path: central}}
  spool: spool
retention:
  central_days: 30
"""


def _site_sizes(devices: int, rng: random.Random) -> Iterator[int]:
    """Devices per site, 2–8 each, adding up to exactly ``devices``."""
    left = devices
    while left > 0:
        size = min(rng.randint(2, 8), left)
        if left - size == 1:  # never leave a site with a single device
            size = size + 1 if size < 8 else size - 1
        left -= size
        yield size


def _sites() -> Iterator[tuple[int, int]]:
    """``(district, commune)`` of each site in order: the centre (0, 0), then each district's
    own site (d, 0) followed by its communes (d, 1…)."""
    yield 0, 0
    for district in itertools.count(1):
        for commune in range(COMMUNES_PER_DISTRICT + 1):
            yield district, commune


def _devices(unit: str, size: int, rng: random.Random, first: int) -> list[str]:
    lines = ["    devices:"]
    for index in range(size):
        n = first + index
        head = f"id: {unit}.{{kind}}-{index + 1}, vendor: {rng.choice(VENDORS)}"
        where = f"host: 10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}, credentials: site"
        if index == 0 and rng.random() < 0.6:
            channels = [
                f"{{id: {c}, name: Quầy tiếp nhận số {c}{', audio: true' if rng.random() < 0.4 else ''}}}"
                for c in range(1, rng.randint(2, 8) + 1)
            ]
            if rng.random() < 0.4:
                channels.append(f"{{id: {len(channels) + 1}, kind: microphone, name: Micro quầy tiếp nhận}}")
            lines.append(
                f"      - {{{head.format(kind='nvr')}, kind: nvr, name: Đầu ghi hình, {where}, "
                f"channels: [{', '.join(channels)}]}}"
            )
        else:
            audio = ", channels: [{id: 1, audio: true}]" if rng.random() < 0.2 else ""
            place = rng.choice(PLACES).lower()
            lines.append(
                f"      - {{{head.format(kind='cam')}, kind: camera, name: Camera {place}, {where}{audio}}}"
            )
    return lines


def _unit(ident: str, name: str, level: str, parent: str, body: str, site: str) -> list[str]:
    lines = [f"  - id: {ident}", f"    name: {name}", f"    level: {level}"]
    if parent:
        lines.append(f"    parent: {parent}")
    return [*lines, f"    managing_body: {body}", f"    site: {site}"]


def _person(ident: str, name: str, body: str, unit: str, title: str) -> list[str]:
    return [
        f"  - id: {ident}",
        f"    name: {name}",
        f"    positions: [{{body: {body}, unit: {unit}, leader: true, title: {title}}}]",
    ]


PROVINCE_LEADERS = (
    ("vp-ubnd-tinh", "Lãnh đạo Văn phòng UBND tỉnh", "Chánh Văn phòng UBND tỉnh"),
    ("so-noi-vu", "Lãnh đạo Sở Nội vụ", "Giám đốc Sở Nội vụ"),
    ("cong-an-tinh", "Lãnh đạo Công an tỉnh", "Phó Giám đốc Công an tỉnh"),
    ("hcc", "Giám đốc Trung tâm HCC", "Giám đốc Trung tâm Hành chính công tỉnh"),
    ("so-khcn", "Lãnh đạo Sở Khoa học và Công nghệ", "Phó Giám đốc Sở Khoa học và Công nghệ"),
)
DISTRICT_LEADERS = (
    ("ubnd-huyen", "Lãnh đạo UBND", "Chủ tịch UBND"),
    ("phong-noi-vu", "Lãnh đạo Phòng Nội vụ", "Trưởng phòng Nội vụ"),
    ("vp-ubnd-huyen", "Lãnh đạo Văn phòng HĐND và UBND", "Chánh Văn phòng HĐND và UBND"),
    ("mot-cua-huyen", "Lãnh đạo Bộ phận một cửa", "Phụ trách Bộ phận một cửa"),
)


def make_province(devices: int, path: Path) -> Path:
    """Write a valid province with exactly ``devices`` devices to ``path``; return ``path``.

    Also writes the demo password the file refers to, ``secrets/bench-password`` beside it.
    """
    if devices < 1:
        raise ValueError("a province needs at least one device")
    rng = random.Random(f"camhub-bench-{devices}")
    units = ["units:"]
    people = ["people:"]
    for body, name, title in PROVINCE_LEADERS:
        people += _person(f"lanh-dao-{body}", name, body, "bench", title)
    first_device = 1
    for (district, commune), size in zip(_sites(), _site_sizes(devices, rng), strict=False):
        if district == 0:
            unit = "bench"
            units += _unit(
                unit, "Tỉnh Thử Tải", "province", "", "hcc", "Trung tâm Hành chính công tỉnh Thử Tải"
            )
        elif commune == 0:
            unit = f"d{district}"
            word, title = DISTRICT_KINDS[district % len(DISTRICT_KINDS)]
            place = f"{rng.choice(SYLLABLES)} {rng.choice(SYLLABLES)} {district}"
            site = f"Bộ phận một cửa UBND {word} {place}"
            units += _unit(unit, f"{title} {place}", "district", "bench", "vp-ubnd-huyen", site)
            for body, name, post in DISTRICT_LEADERS:
                people += _person(f"{unit}.{body}", f"{name} {word} {place}", body, unit, post)
        else:
            unit = f"d{district}.c{commune}"
            word, title = COMMUNE_KINDS[commune % len(COMMUNE_KINDS)]
            place = f"{rng.choice(SYLLABLES)} {rng.choice(SYLLABLES)} {commune}"
            site = f"Bộ phận một cửa UBND {word} {place}"
            units += _unit(unit, f"{title} {place}", "commune", f"d{district}", "ubnd-xa", site)
            people += _person(
                f"{unit}.ubnd-xa", f"Lãnh đạo UBND {word} {place}", "ubnd-xa", unit, "Chủ tịch UBND"
            )
        units += _devices(unit, size, rng, first_device)
        first_device += size
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEAD.format(secret=SECRET), *units, *people]) + "\n", encoding="utf-8")
    secret = path.parent / SECRET
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("bench-only-not-a-real-password\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic province for the load benchmark.")
    parser.add_argument("path", nargs="?", type=Path, default=Path("big-province.yaml"))
    parser.add_argument("--devices", type=int, default=2000, help="how many devices (default 2000)")
    args = parser.parse_args(argv)
    print(make_province(args.devices, args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

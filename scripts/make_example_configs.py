"""Generate the Đồng Nai example provinces from the shared list of administrative units.

Writes, under ``examples/configs/``:

- ``dong-nai.yaml`` and ``dong-nai/<district>.yaml``: the three-tier province of 2021–2024: the
  provincial centre, 11 district-level units and 170 communes;
- ``dong-nai-2025.yaml``: the two-tier province since 1 July 2025: the centre and 95 communes,
  each naming the units it was merged from (Nghị quyết 1662/NQ-UBTVQH15); the province names the
  11 abolished district-level units and the former province of Bình Phước.

Ids of 2021–2024 are kept as they are: footage was recorded under them. The 2025 communes are
``<kind>-<slug>`` (``phuong-bien-hoa``, ``xa-dai-phuoc``), as ten of them share their bare slug
with an abolished district (``bien-hoa``); the script stops if any 2025 id is an old one.

Units and their names come from the data file; devices and people are invented, but every
choice is seeded by a unit's id, so the script writes the same files every time. Usage::

    python scripts/make_example_configs.py [DATA] [--out DIR]

``DATA`` defaults to ``../shared/data/dong-nai-units.yaml`` beside the repository. Anything in
the reorganisation text that cannot be resolved is listed as a warning on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dong-nai-units.yaml"
DEFAULT_OUT = REPO / "examples" / "configs"

PROVINCE_ID = "dong-nai"
PROVINCE_NAME = "Tỉnh Đồng Nai"
BINH_PHUOC_ID = "tinh-binh-phuoc"  # the former province, merged into Đồng Nai in 2025
BINH_PHUOC_NAME = "Tỉnh Bình Phước"
SECRET_FILE = "secrets/demo-password"
HCC_2021 = "Trung tâm Hành chính công tỉnh"
HCC_2025 = "Trung tâm Phục vụ hành chính công tỉnh"

KIND_TITLE = {
    "thanh_pho": "Thành phố",
    "thi_xa": "Thị xã",
    "huyen": "Huyện",
    "phuong": "Phường",
    "xa": "Xã",
    "thi_tran": "Thị trấn",
}
KIND_OF_WORD = {"phường": "phuong", "xã": "xa", "thị trấn": "thi_tran"}
DISTRICT_KINDS = ("thanh_pho", "thi_xa", "huyen")
COMMUNE_KINDS = ("phuong", "xa", "thi_tran")

#: Communes of the 2021–2024 list merged away in late 2024, and the commune that took them in.
#: From the comments and notes of the data file: Biên Hòa from the merger resolution as reported
#: (matches GSO), Tân Phú from GSO, Long Khánh and Hiếu Liêm from the 2023–2025 plan. In 2025
#: their footage passes on with their late-2024 successor's.
LATE_2024_MERGERS = {
    "bien-hoa.tan-tien": "bien-hoa.tan-mai",
    "bien-hoa.tam-hoa": "bien-hoa.binh-da",
    "bien-hoa.hoa-binh": "bien-hoa.quang-vinh",
    "bien-hoa.quyet-thang": "bien-hoa.trung-dung",
    "bien-hoa.thanh-binh": "bien-hoa.trung-dung",
    "long-khanh.xuan-trung": "long-khanh.xuan-an",
    "long-khanh.xuan-thanh": "long-khanh.xuan-an",
    "tan-phu.nui-tuong": "tan-phu.phu-son",
    "tan-phu.phu-trung": "tan-phu.phu-son",
    "vinh-cuu.hieu-liem": "vinh-cuu.tri-an",
}
#: Merged away in late 2024 too, but the data does not say into which commune.
LATE_2024_UNKNOWN = ("vinh-cuu.binh-hoa",)

HEADER = """\
# GENERATED FILE: do not edit by hand.
# Written by scripts/make_example_configs.py from shared/data/dong-nai-units.yaml; change the
# script or the data and run `python scripts/make_example_configs.py` again.

"""


# -- text ------------------------------------------------------------------------------------

#: Sources differ in where they put the tone mark ("Hoà", "Hòa"); names are compared with one.
_OLD_STYLE_TONES = {
    "oà": "òa",
    "oá": "óa",
    "oả": "ỏa",
    "oã": "õa",
    "oạ": "ọa",
    "oè": "òe",
    "oé": "óe",
    "oẻ": "ỏe",
    "oẽ": "õe",
    "oẹ": "ọe",
    "uỳ": "ùy",
    "uý": "úy",
    "uỷ": "ủy",
    "uỹ": "ũy",
    "uỵ": "ụy",
}


def slug(text: str) -> str:
    """ASCII identifier of a Vietnamese name: ``Tân Hạnh`` → ``tan-hanh``."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def match_key(name: str) -> str:
    """A name folded for comparison: NFC, lower case, one space, tone marks placed one way."""
    text = " ".join(unicodedata.normalize("NFC", name).lower().split())
    for old, new in _OLD_STYLE_TONES.items():
        text = text.replace(old, new)
    return text


def in_sentence(unit_name: str) -> str:
    """A unit's name as written inside a sentence: ``Phường Tân Hạnh`` → ``phường Tân Hạnh``."""
    for title in sorted(KIND_TITLE.values(), key=len, reverse=True):
        if unit_name.startswith(title + " "):
            return title.lower() + unit_name[len(title) :]
    return unit_name


def bare_name(unit_name: str) -> str:
    """A unit's name without its kind: ``Thị trấn Tân Phú`` → ``Tân Phú``."""
    for title in sorted(KIND_TITLE.values(), key=len, reverse=True):
        if unit_name.startswith(title + " "):
            return unit_name[len(title) + 1 :]
    return unit_name


# -- the 2021–2024 units ---------------------------------------------------------------------


@dataclass(frozen=True)
class Commune:
    id: str  # qualified with the district: bien-hoa.tan-hanh
    name: str
    kind: str
    district_id: str
    district_name: str
    number: int  # 1-based, in the district's list


@dataclass
class District:
    id: str
    name: str
    kind: str
    number: int  # 1-based, in the data file's order
    communes: list[Commune] = field(default_factory=list)


def read_districts(data: dict[str, Any], warnings: list[str]) -> list[District]:
    districts = []
    for number, entry in enumerate(data["districts"], start=1):
        if entry["kind"] not in DISTRICT_KINDS:
            warnings.append(f"district {entry['id']}: unknown kind {entry['kind']!r}")
        district = District(entry["id"], entry["name"], entry["kind"], number)
        for index, item in enumerate(entry["communes"], start=1):
            if item["kind"] not in COMMUNE_KINDS:
                warnings.append(f"commune {entry['id']}.{item['id']}: unknown kind {item['kind']!r}")
            district.communes.append(
                Commune(
                    f"{entry['id']}.{item['id']}",
                    item["name"],
                    item["kind"],
                    entry["id"],
                    entry["name"],
                    index,
                )
            )
        districts.append(district)
    communes = sum(len(district.communes) for district in districts)
    if (len(districts), communes) != (11, 170):
        warnings.append(
            f"expected 11 districts and 170 communes, the data has {len(districts)} and {communes}"
        )
    return districts


# -- devices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    kind: str = "camera"
    audio: bool = False


@dataclass(frozen=True)
class Device:
    id: str
    vendor: str
    kind: str
    name: str
    host: str
    credentials: str
    channels: tuple[Channel, ...] = ()
    onvif_auth: str = ""


VENDORS = ("hikvision", "dahua", "onvif")
VENDOR_WEIGHTS = (45, 35, 20)
PLACES = (
    "Lối vào",
    "Sảnh chờ",
    "Khu lấy số thứ tự",
    "Khu trả kết quả",
    "Khu tra cứu thủ tục",
    "Hành lang",
    "Bãi đỗ xe",
)


def seeded(key: str) -> random.Random:
    """A random generator fixed by ``key``: the same key always gives the same choices."""
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def site_devices(owner: str, subnet: tuple[int, int], credentials: str) -> list[Device]:
    """2–8 devices of one site, named ``<owner>.nvr-1``, ``<owner>.cam-1``…, on 10.a.b.11 upward."""
    rng = seeded(owner)
    count = rng.randint(2, 8)
    roll = rng.random()
    nvr_count = 0 if roll < 0.35 else 2 if roll > 0.9 and count >= 5 else 1
    places = list(PLACES)
    rng.shuffle(places)
    counters = 0
    devices = []
    for index in range(count):
        vendor = rng.choices(VENDORS, VENDOR_WEIGHTS)[0]
        auth = "ws-security" if vendor == "onvif" and rng.random() < 0.25 else ""
        host = f"10.{subnet[0]}.{subnet[1]}.{11 + index}"
        if index < nvr_count:
            channels: list[Channel] = []
            for _ in range(rng.randint(1, 4)):
                counters += 1
                channels.append(
                    Channel(len(channels) + 1, f"Quầy tiếp nhận số {counters}", audio=rng.random() < 0.5)
                )
            for _ in range(rng.randint(1, 3)):
                place = places.pop() if places else "Hành lang"
                channels.append(Channel(len(channels) + 1, place))
            if rng.random() < 0.5:
                channels.append(
                    Channel(len(channels) + 1, f"Micro quầy tiếp nhận số {counters}", kind="microphone")
                )
            name = f"Đầu ghi hình số {index + 1}" if nvr_count > 1 else "Đầu ghi hình"
            devices.append(
                Device(
                    f"{owner}.nvr-{index + 1}", vendor, "nvr", name, host, credentials, tuple(channels), auth
                )
            )
        else:
            if places and rng.random() < 0.6:
                place, audio = places.pop(), rng.random() < 0.1
            else:
                counters += 1
                place, audio = f"Quầy tiếp nhận số {counters}", rng.random() < 0.4
            camera = (Channel(1, place, audio=True),) if audio else ()
            number = index + 1 - nvr_count
            devices.append(
                Device(
                    f"{owner}.cam-{number}",
                    vendor,
                    "camera",
                    f"Camera {place[0].lower()}{place[1:]}",
                    host,
                    credentials,
                    camera,
                    auth,
                )
            )
    return devices


# -- people ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    body: str
    unit: str
    title: str
    leader: bool = True


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    positions: tuple[Position, ...]


def province_people(hcc_name: str) -> list[Person]:
    """Article 5.1 leaders, the HCC director, the two approvers of device changes, one official."""
    root = PROVINCE_ID
    return [
        Person(
            "lanh-dao-vp-ubnd-tinh",
            "Lãnh đạo Văn phòng UBND tỉnh",
            (Position("vp-ubnd-tinh", root, "Chánh Văn phòng UBND tỉnh"),),
        ),
        Person(
            "lanh-dao-so-noi-vu", "Lãnh đạo Sở Nội vụ", (Position("so-noi-vu", root, "Giám đốc Sở Nội vụ"),)
        ),
        Person(
            "lanh-dao-cong-an-tinh",
            "Lãnh đạo Công an tỉnh",
            (Position("cong-an-tinh", root, "Phó Giám đốc Công an tỉnh"),),
        ),
        Person(
            "duyet-thay-doi-so-noi-vu",
            "Lãnh đạo Sở Nội vụ phụ trách cải cách hành chính",
            (Position("so-noi-vu", root, "Phó Giám đốc Sở Nội vụ"),),
        ),
        Person(
            "duyet-thay-doi-so-khcn",
            "Lãnh đạo Sở Khoa học và Công nghệ",
            (Position("so-khcn", root, "Phó Giám đốc Sở Khoa học và Công nghệ"),),
        ),
        Person("giam-doc-hcc", "Giám đốc Trung tâm HCC", (Position("hcc", root, f"Giám đốc {hcc_name}"),)),
        Person(
            "chuyen-vien-vp-ubnd-tinh",
            "Chuyên viên Văn phòng UBND tỉnh",
            (Position("vp-ubnd-tinh", root, "Chuyên viên", leader=False),),
        ),
    ]


def district_people(district: District) -> list[Person]:
    """Article 5.2 leaders of the district, the one-stop's leader (5.3), one official (5.4)."""
    where, kind = in_sentence(district.name), KIND_TITLE[district.kind].lower()
    unit = district.id
    return [
        Person(
            f"{unit}.lanh-dao-ubnd-huyen",
            f"Lãnh đạo UBND {where}",
            (Position("ubnd-huyen", unit, f"Chủ tịch UBND {kind}"),),
        ),
        Person(
            f"{unit}.lanh-dao-phong-noi-vu",
            f"Lãnh đạo Phòng Nội vụ {where}",
            (Position("phong-noi-vu", unit, "Trưởng phòng Nội vụ"),),
        ),
        Person(
            f"{unit}.lanh-dao-van-phong",
            f"Lãnh đạo Văn phòng HĐND và UBND {where}",
            (Position("vp-ubnd-huyen", unit, "Chánh Văn phòng HĐND và UBND"),),
        ),
        Person(
            f"{unit}.lanh-dao-mot-cua",
            f"Lãnh đạo Bộ phận một cửa {where}",
            (Position("mot-cua-huyen", unit, "Phụ trách Bộ phận một cửa"),),
        ),
        Person(
            f"{unit}.chuyen-vien-phong-noi-vu",
            f"Chuyên viên Phòng Nội vụ {where}",
            (Position("phong-noi-vu", unit, "Chuyên viên", leader=False),),
        ),
    ]


def commune_leader(unit: str, name: str, kind: str, where: str = "") -> Person:
    """Article 5.3: the chair of a commune People's Committee, at the commune's own site."""
    suffix = f" ({where})" if where else ""
    title = f"Chủ tịch UBND {KIND_TITLE[kind].lower()}"
    return Person(
        f"{unit}.lanh-dao-ubnd-xa",
        f"Lãnh đạo UBND {in_sentence(name)}{suffix}",
        (Position("ubnd-xa", unit, title),),
    )


# -- YAML writing ----------------------------------------------------------------------------

_PLAIN = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`][^:#,\[\]{}]*")


def scalar(value: str | int | bool) -> str:
    """A value as a YAML scalar, quoted only where plain YAML would read it differently."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if _PLAIN.fullmatch(value) and value == value.strip() and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def flow(**items: str | int | bool | None) -> str:
    """A one-line mapping, leaving out None."""
    return (
        "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in items.items() if value is not None) + "}"
    )


class Writer:
    """Lines of a YAML file written by hand, so that it can carry comments."""

    def __init__(self, header: str = HEADER) -> None:
        self.lines = header.rstrip("\n").split("\n")

    def add(self, text: str = "", indent: int = 0) -> None:
        self.lines.append(" " * indent + text if text else "")

    def comment(self, text: str, indent: int = 0, *, wrap: bool = False) -> None:
        for line in text.strip("\n").split("\n"):
            pieces = textwrap.wrap(line, 108 - indent, break_on_hyphens=False) if wrap else [line]
            for piece in pieces or [""]:
                self.add(f"# {piece}".rstrip(), indent)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass(frozen=True)
class Body:
    id: str
    name: str
    level: str
    article5: str | None = None
    roles: tuple[str, ...] = ()
    note: str = ""


PROVINCE_BODIES = (
    Body("vp-ubnd-tinh", "Văn phòng UBND tỉnh", "province", "5.1"),
    Body(
        "so-noi-vu",
        "Sở Nội vụ",
        "province",
        "5.1",
        ("home_affairs",),
        "Home Affairs gives its opinion on every device change (Article 7.2).",
    ),
    Body("cong-an-tinh", "Công an tỉnh", "province", "5.1"),
    Body("hcc", HCC_2021, "province", "5.3", (), "Manages the centre's own cameras (Article 4.1)."),
    Body(
        "so-khcn",
        "Sở Khoa học và Công nghệ",
        "province",
        None,
        ("ict",),
        "The regulation's ICT body was the Department of Information and Communications (Sở Thông\n"
        "tin và Truyền thông), merged into the Department of Science and Technology in 2025. No\n"
        "Article 5 point: its people approve device changes (Article 7.2), watch only by grant.",
    ),
)
DISTRICT_BODIES = (
    Body("ubnd-huyen", "UBND huyện", "district", "5.2"),
    Body("phong-noi-vu", "Phòng Nội vụ", "district", "5.2"),
    Body(
        "vp-ubnd-huyen",
        "Văn phòng HĐND và UBND huyện",
        "district",
        "5.2",
        (),
        "Manages the district one-stop's cameras (Article 4.2).",
    ),
    Body("mot-cua-huyen", "Bộ phận một cửa huyện", "district", "5.3"),
)
COMMUNE_BODY_2021 = Body(
    "ubnd-xa", "UBND xã", "commune", "5.3", (), "Manages the commune's own cameras (Article 4.3)."
)
COMMUNE_BODY_2025 = Body(
    "ubnd-xa", "UBND xã, phường", "commune", "5.3", (), "Manages the commune's own cameras."
)


def write_top(out: Writer, levels: Sequence[tuple[str, str]], bodies: Iterable[Body]) -> None:
    out.add("camhub: 1")
    out.add()
    out.add("province:")
    out.add(f"id: {PROVINCE_ID}", 2)
    out.add(f"name: {scalar(PROVINCE_NAME)}", 2)
    out.add("timezone: Asia/Ho_Chi_Minh", 2)
    out.add()
    out.add("levels:")
    for level_id, level_name in levels:
        out.add(f"- {flow(id=level_id, name=level_name)}", 2)
    out.add()
    out.add("bodies:")
    for body in bodies:
        if body.note:
            out.comment(body.note, 2)
        roles = f", roles: [{', '.join(body.roles)}]" if body.roles else ""
        item = flow(id=body.id, name=body.name, level=body.level)
        article5 = f", article5: {json.dumps(body.article5)}" if body.article5 else ""
        out.add(f"- {item[:-1]}{article5}{roles}}}", 2)
    out.add()


def write_credentials(out: Writer, names: Iterable[str], secret: str) -> None:
    out.comment(
        "Device accounts. The examples point at a demo password in the repository so that they\n"
        "load without setup; a real deployment uses {$env: NAME} or a file outside the repository."
    )
    out.add("credentials:")
    for name in names:
        out.add(f"{name}: {{username: admin, password: {{$file: {secret}}}}}", 2)
    out.add()


def write_storage(out: Writer) -> None:
    out.add("storage:")
    out.add("central: {backend: filesystem, path: central}", 2)
    out.add("spool: spool", 2)
    out.add()
    out.comment("Article 6.2: at least 7 days.")
    out.add("retention:")
    out.add("central_days: 30", 2)


@dataclass(frozen=True)
class Predecessor:
    id: str
    name: str
    part: bool = False
    note: str = ""


def write_unit(
    out: Writer,
    unit: dict[str, str],
    devices: Sequence[Device],
    merged_from: Sequence[Predecessor] = (),
    notes: Sequence[str] = (),
) -> None:
    for note in notes:
        out.comment(note, 2, wrap=True)
    first = True
    for key, value in unit.items():
        out.add(f"{'- ' if first else '  '}{key}: {scalar(value)}", 2)
        first = False
    if merged_from:
        out.add("merged_from:", 4)
        for former in merged_from:
            item = flow(id=former.id, name=former.name, part=True if former.part else None)
            out.add(f"- {item}" + (f"  # {former.note}" if former.note else ""), 6)
    if devices:
        out.add("devices:", 4)
    for device in devices:
        out.add(f"- id: {scalar(device.id)}", 6)
        out.add(f"vendor: {device.vendor}", 8)
        out.add(f"kind: {device.kind}", 8)
        out.add(f"name: {scalar(device.name)}", 8)
        out.add(f"host: {scalar(device.host)}", 8)
        out.add(f"credentials: {scalar(device.credentials)}", 8)
        if device.onvif_auth:
            out.add(f"auth: {device.onvif_auth}", 8)
        if device.channels:
            out.add("channels:", 8)
        for channel in device.channels:
            kind = channel.kind if channel.kind != "camera" else None
            out.add(f"- {flow(id=channel.id, kind=kind, name=channel.name, audio=channel.audio or None)}", 10)


def write_people(out: Writer, people: Iterable[Person]) -> None:
    out.add("people:")
    for person in people:
        out.add(f"- id: {scalar(person.id)}", 2)
        out.add(f"  name: {scalar(person.name)}", 2)
        out.add("  positions:", 2)
        for position in person.positions:
            leader = True if position.leader else None
            out.add(
                f"- {flow(body=position.body, unit=position.unit, leader=leader, title=position.title)}", 6
            )


# -- dong-nai.yaml: 2021–2024 ----------------------------------------------------------------


def root_devices() -> list[Device]:
    return site_devices(PROVINCE_ID, (0, 0), f"site-{PROVINCE_ID}")


def district_devices(district: District) -> list[Device]:
    return site_devices(district.id, (district.number, 0), f"site-{district.id}")


def commune_devices(commune: Commune, district: District) -> list[Device]:
    return site_devices(commune.id, (district.number, commune.number), f"site-{district.id}")


def write_2021(districts: Sequence[District], out_dir: Path) -> list[Path]:
    main = Writer()
    main.comment(
        "Đồng Nai as it was from 1 July 2021 to late 2024: three tiers, the provincial Public\n"
        "Administration Centre, 11 district-level units and 170 communes (GSO list). Unit names are\n"
        "the official ones; devices and people are invented (people are named by their posts).\n"
        "Devices use the default ports (HTTP 80, RTSP 554) on private addresses 10.<district>.<commune>.x;\n"
        "nothing answers there. Each district's communes, their devices and leaders are in\n"
        "dong-nai/<district>.yaml. Commune ids are qualified with their district's id\n"
        "(bien-hoa.tan-hanh), as commune names repeat across districts."
    )
    main.add()
    levels = (
        ("province", "Tỉnh"),
        ("district", "Huyện / thị xã / thành phố"),
        ("commune", "Xã / phường / thị trấn"),
    )
    write_top(main, levels, (*PROVINCE_BODIES, *DISTRICT_BODIES, COMMUNE_BODY_2021))
    write_credentials(main, [f"site-{PROVINCE_ID}", *(f"site-{d.id}" for d in districts)], SECRET_FILE)
    main.add("include:")
    for district in districts:
        main.add(f"- dong-nai/{district.id}.yaml", 2)
    main.add()
    main.add("units:")
    root = {
        "id": PROVINCE_ID,
        "name": PROVINCE_NAME,
        "level": "province",
        "managing_body": "hcc",
        "site": f"{HCC_2021} Đồng Nai",
    }
    write_unit(main, root, root_devices())
    for district in districts:
        main.add()
        unit = {
            "id": district.id,
            "name": district.name,
            "level": "district",
            "parent": PROVINCE_ID,
            "managing_body": "vp-ubnd-huyen",
            "site": f"Bộ phận một cửa UBND {in_sentence(district.name)}",
        }
        write_unit(main, unit, district_devices(district))
    main.add()
    write_people(main, [*province_people(HCC_2021), *(p for d in districts for p in district_people(d))])
    main.add()
    write_storage(main)
    written = [out_dir / "dong-nai.yaml"]
    written[0].write_text(main.text(), encoding="utf-8")

    (out_dir / "dong-nai").mkdir(exist_ok=True)
    for district in districts:
        part = Writer()
        part.comment(
            f"{district.name}: its {len(district.communes)} communes, their devices and leaders.\n"
            "Included by ../dong-nai.yaml."
        )
        part.add()
        part.add("units:")
        for commune in district.communes:
            unit = {
                "id": commune.id,
                "name": commune.name,
                "level": "commune",
                "parent": district.id,
                "managing_body": "ubnd-xa",
                "site": f"Bộ phận một cửa UBND {in_sentence(commune.name)}",
            }
            write_unit(part, unit, commune_devices(commune, district))
            part.add()
        where = in_sentence(district.name)
        write_people(part, [commune_leader(c.id, c.name, c.kind, where) for c in district.communes])
        path = out_dir / "dong-nai" / f"{district.id}.yaml"
        path.write_text(part.text(), encoding="utf-8")
        written.append(path)
    return written


# -- dong-nai-2025.yaml: the reorganisation --------------------------------------------------

PART_MARK = "§"
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Mention:
    """A former unit as the resolution names it: ``xã Long Tân (huyện Nhơn Trạch)``."""

    kind: str
    name: str  # without the kind: Long Tân
    qualifier: str = ""  # huyện Nhơn Trạch
    part: bool = False

    @property
    def full_name(self) -> str:
        return f"{KIND_TITLE[self.kind]} {self.name}"


_SEPARATOR = re.compile(r", | và ")
_ITEM = re.compile(
    rf"(?P<part>{PART_MARK})?(?P<cac>các )?(?:(?P<kind>thị trấn|phường|xã) )?"
    r"(?P<name>[^()]+?)(?: \((?P<qualifier>[^()]+)\))?"
)


def parse_predecessors(text: str) -> list[Mention]:
    """The former units named by a clause of NQ 1662, e.g. "các xã Phú Hữu, Phú Đông và Đại Phước".

    A parenthesised district applies to the name before it; also to the name before that when
    the two are joined by "và" ("xã Lộc An và xã Bình Sơn (huyện Long Thành)") and to the names
    before it in the same "các xã …" list ("các xã Tân Thành, Tân Tiến (huyện Bù Đốp)").

    :raises ValueError: for text that does not read as a list of units.
    """
    text = " ".join(text.split())
    text = text.replace("một phần diện tích tự nhiên, quy mô dân số của ", PART_MARK)
    text = text.replace("phần còn lại của ", PART_MARK)
    text = re.sub(r" sau khi sắp xếp theo quy định tại khoản \d+ Điều này", "", text)
    spans = [match.span() for match in re.finditer(r"\([^()]*\)", text)]
    chunks: list[tuple[str, str]] = []  # (separator before, text)
    start, separator = 0, ""
    for found in _SEPARATOR.finditer(text):
        if any(lo < found.start() < hi for lo, hi in spans):
            continue
        chunks.append((separator, text[start : found.start()]))
        start, separator = found.end(), found.group().strip(", ") or ","
    chunks.append((separator, text[start:]))

    kinds: list[str] = []
    qualifiers: list[str] = []
    parts: list[bool] = []
    names: list[str] = []
    current_kind = ""
    group_start = 0
    for index, (separator, chunk) in enumerate(chunks):
        match = _ITEM.fullmatch(chunk.strip())
        if match is None:
            raise ValueError(f"cannot read {chunk!r}")
        own_kind = match.group("kind")
        if own_kind:
            current_kind = KIND_OF_WORD[own_kind]
            group_start = index
        if not current_kind:
            raise ValueError(f"no kind (xã, phường, thị trấn) before {chunk!r}")
        kinds.append(current_kind)
        names.append(match.group("name").strip())
        parts.append(bool(match.group("part")))
        qualifiers.append("")
        qualifier = match.group("qualifier") or ""
        if not qualifier:
            continue
        qualifiers[index] = qualifier
        if not own_kind:  # inside a "các xã A, B (q)" list: back to the list's start
            for before in range(index - 1, group_start - 1, -1):
                if qualifiers[before]:
                    break
                qualifiers[before] = qualifier
        elif not match.group("cac") and separator == "và" and index > 0 and not qualifiers[index - 1]:
            qualifiers[index - 1] = qualifier
    return [Mention(k, n, q, p) for k, n, q, p in zip(kinds, names, qualifiers, parts, strict=True)]


@dataclass
class NewUnit:
    id: str  # <kind>-<slug>: phuong-bien-hoa, xa-loc-thanh-2
    key: str  # the data file's id, the bare slug: bien-hoa, loc-thanh-2
    name: str
    kind: str
    clause: int
    origin: str  # dong-nai or binh-phuoc
    text: str
    mentions: list[Mention] = field(default_factory=list)
    merged_from: list[Predecessor] = field(default_factory=list)
    primary: Commune | None = None  # the former Đồng Nai commune whose devices it keeps


def new_unit_id(kind: str, key: str) -> str:
    """Id of a 2025 commune: its kind before the data file's slug, ``phuong-bien-hoa``.

    The bare slug would reuse ids of 2021–2024: Phường Biên Hòa would be ``bien-hoa``, the id of
    the abolished Thành phố Biên Hòa, and grants or catalog rows keyed by the old district would
    silently attach to the new commune. With the kind, no 2025 id has the form of an old one (no
    dot, and no district's name starts with a commune kind); `check_new_ids` makes sure.
    """
    return f"{slug(KIND_TITLE[kind])}-{key}"


def read_new_units(data: dict[str, Any], warnings: list[str]) -> list[NewUnit]:
    reorganisation = data["reorganisation_2025"]
    units = []
    for origin, key in (
        ("dong-nai", "new_units_from_old_dong_nai"),
        ("binh-phuoc", "new_units_from_binh_phuoc"),
    ):
        for item in reorganisation[key]:
            ident = new_unit_id(item["kind"], item["id"])
            unit = NewUnit(
                ident, item["id"], item["name"], item["kind"], item["clause"], origin, item["from"]
            )
            if unit.text.startswith(UNCHANGED):
                unit.mentions = [Mention(unit.kind, bare_name(unit.name))]
            else:
                try:
                    unit.mentions = parse_predecessors(unit.text)
                except ValueError as exc:
                    warnings.append(f"{unit.id} (khoản {unit.clause}): {exc}; no predecessors listed")
            units.append(unit)
    counts = Counter(unit.origin for unit in units)
    if (counts["dong-nai"], counts["binh-phuoc"]) != (55, 40):
        warnings.append(
            f"expected 55 + 40 new communes, the data has {counts['dong-nai']} + {counts['binh-phuoc']}"
        )
    duplicates = [name for name, n in Counter(match_key(u.name) for u in units).items() if n > 1]
    if duplicates:
        warnings.append(f"new communes with the same name: {', '.join(duplicates)}")
    return units


def resolve_dong_nai(
    units: Sequence[NewUnit], districts: Sequence[District], warnings: list[str], notes: list[str]
) -> None:
    """Name each former Đồng Nai commune by its id in dong-nai.yaml, so footage and rights carry over."""
    by_name: dict[str, list[Commune]] = {}
    for district in districts:
        for commune in district.communes:
            by_name.setdefault(match_key(commune.name), []).append(commune)
    district_keys = {match_key(district.name): district.id for district in districts}

    candidates: dict[tuple[int, int], list[Commune]] = {}
    for u, unit in enumerate(units):
        for m, mention in enumerate(unit.mentions):
            found = by_name.get(match_key(mention.full_name), [])
            if not found:  # the kind may differ (a xã that became a phường)
                found = [
                    c
                    for d in districts
                    for c in d.communes
                    if match_key(bare_name(c.name)) == match_key(mention.name)
                ]
                if found:
                    warnings.append(
                        f"{unit.id}: {mention.full_name} found only as {', '.join(c.name for c in found)}"
                    )
            if mention.qualifier:
                district_id = district_keys.get(match_key(mention.qualifier))
                if district_id is None:
                    warnings.append(
                        f"{unit.id}: unknown district {mention.qualifier!r} for {mention.full_name}"
                    )
                else:
                    found = [c for c in found if c.district_id == district_id]
            candidates[(u, m)] = found

    claimed = {found[0].id for found in candidates.values() if len(found) == 1}
    chosen: dict[tuple[int, int], Commune | None] = {}
    for key, found in candidates.items():
        unit, mention = units[key[0]], units[key[0]].mentions[key[1]]
        if len(found) == 1:
            chosen[key] = found[0]
            continue
        if len(found) > 1:
            left = [c for c in found if c.id not in claimed]
            if len(left) == 1:
                chosen[key] = left[0]
                others = ", ".join(c.id for c in found if c is not left[0])
                notes.append(
                    f"{unit.id}: {mention.full_name} is {left[0].id}, as {others} went to other communes"
                )
                continue
            options = ", ".join(c.id for c in found)
            warnings.append(f"{unit.id}: {mention.full_name} is ambiguous ({options}); listed as former.*")
        else:
            warnings.append(
                f"{unit.id}: {mention.full_name} is not in the 2021–2024 list; listed as former.*"
            )
        chosen[key] = None

    absorbed: dict[str, list[str]] = {}
    for merged, into in LATE_2024_MERGERS.items():
        absorbed.setdefault(into, []).append(merged)
    communes = {c.id: c for d in districts for c in d.communes}
    for u, unit in enumerate(units):
        for m, mention in enumerate(unit.mentions):
            former = chosen[(u, m)]
            if former is None:
                unit.merged_from.append(
                    Predecessor(f"former.{slug(mention.name)}", mention.full_name, mention.part)
                )
                continue
            unit.merged_from.append(Predecessor(former.id, former.name, mention.part))
            for merged in absorbed.get(former.id, []):
                note = f"merged into {former.name} in late 2024"
                unit.merged_from.append(Predecessor(merged, communes[merged].name, mention.part, note))
        pairs = [(chosen[(u, m)], mention) for m, mention in enumerate(unit.mentions)]
        whole = [c for c, mention in pairs if c is not None and not mention.part]
        same_name = [c for c in whole if c.id.split(".", 1)[1] == unit.key]
        unit.primary = same_name[0] if same_name else whole[0] if whole else None

    listed = Counter(p.id for unit in units for p in unit.merged_from)
    for commune_id, times in sorted(listed.items()):
        parts = {p.part for unit in units for p in unit.merged_from if p.id == commune_id}
        if times > 1 and parts != {True}:
            warnings.append(f"{commune_id} is a whole predecessor of more than one new commune")
    for commune_id in communes:
        if commune_id not in listed:
            why = (
                "merged away in late 2024 into a commune the data does not name"
                if (commune_id in LATE_2024_UNKNOWN)
                else "not named by any clause"
            )
            warnings.append(f"{commune_id} ({communes[commune_id].name}) has no successor: {why}")


def resolve_binh_phuoc(units: Sequence[NewUnit], warnings: list[str]) -> None:
    """Ids for the former Bình Phước communes, which no configuration here lists as units.

    ``binh-phuoc.<name>``. Different names with the same ASCII form are numbered as in the data
    file (Lộc Thành ``loc-thanh``, Lộc Thạnh ``loc-thanh-2``); two former communes with the same
    name are qualified with their district where the text gives it
    (``binh-phuoc.hon-quan.tan-hung``), else with their kind (``binh-phuoc.phuong-minh-hung``).
    """
    mentions = [(unit, mention) for unit in units for mention in unit.mentions]
    spellings: dict[str, list[str]] = {}
    for _, mention in mentions:
        names = spellings.setdefault(slug(mention.name), [])
        if match_key(mention.name) not in names:
            names.append(match_key(mention.name))

    def name_slug(mention: Mention) -> str:
        base = slug(mention.name)
        number = spellings[base].index(match_key(mention.name)) + 1
        return base if number == 1 else f"{base}-{number}"

    same_name = Counter(name_slug(mention) for _, mention in mentions)
    seen: dict[str, str] = {}
    for unit, mention in mentions:
        name = name_slug(mention)
        if same_name[name] == 1:
            ident = f"binh-phuoc.{name}"
        elif mention.qualifier:
            district = bare_name(mention.qualifier[0].upper() + mention.qualifier[1:])
            ident = f"binh-phuoc.{slug(district)}.{name}"
        else:
            ident = f"binh-phuoc.{slug(KIND_TITLE[mention.kind])}-{name}"
        if ident in seen:
            warnings.append(f"{unit.id}: {mention.full_name} gets id {ident} of {seen[ident]} too; suffixed")
            ident = f"{ident}-{unit.key}"
        seen[ident] = f"{mention.full_name} ({unit.id})"
        unit.merged_from.append(Predecessor(ident, mention.full_name, mention.part))


def check_new_ids(units: Sequence[NewUnit], districts: Sequence[District]) -> list[str]:
    """Problems with the 2025 unit ids: one used twice, or one that was already an id before.

    Old ids are the root, the district ids and the qualified commune ids of dong-nai.yaml, the
    former province of Bình Phước and every former unit a 2025 unit names (``binh-phuoc.…``).
    """
    old = {PROVINCE_ID, BINH_PHUOC_ID}
    old.update(district.id for district in districts)
    old.update(commune.id for district in districts for commune in district.communes)
    old.update(former.id for unit in units for former in unit.merged_from)
    counts = Counter(unit.id for unit in units)
    problems = [f"{unit_id} is the id of {times} new units" for unit_id, times in counts.items() if times > 1]
    problems += [
        f"{unit.id} ({unit.name}) is already an id of 2021–2024 or of a former unit"
        for unit in units
        if unit.id in old
    ]
    return problems


def write_2025(units: Sequence[NewUnit], districts: Sequence[District], out_dir: Path) -> Path:
    out = Writer()
    out.comment(
        "Đồng Nai since 1 July 2025: two tiers. Đồng Nai and Bình Phước were merged into one province\n"
        "(Nghị quyết 202/2025/QH15), district-level government ended, and the communes were merged into\n"
        "95 (Nghị quyết 1662/NQ-UBTVQH15: 55 on the territory of old Đồng Nai, 40 of old Bình Phước).\n"
        "\n"
        "The province keeps its id (dong-nai). The 2025 communes are <kind>-<slug>: phuong-bien-hoa,\n"
        "xa-dai-phuoc, xa-loc-thanh (Lộc Thành) and xa-loc-thanh-2 (Lộc Thạnh). No 2025 id equals one\n"
        "of 2021–2024: ten communes share their name with an abolished district (Phường Biên Hòa and\n"
        "Thành phố Biên Hòa, both bien-hoa by their bare slug), and grants or catalog rows keyed by\n"
        "the old district must not attach to the new commune.\n"
        "\n"
        "`merged_from` lists each unit's former units, so their footage and the rights over it pass\n"
        "on. Former Đồng Nai communes carry their ids from dong-nai.yaml (bien-hoa.tan-hanh), with\n"
        "the communes merged away in late 2024 listed under their final successor; former Bình\n"
        "Phước communes, which no configuration here lists, are binh-phuoc.<name>. The 11\n"
        "district-level units of dong-nai.yaml were abolished and no commune succeeds them (their\n"
        "territory went to several): the province lists them under their dong-nai.yaml ids\n"
        "(bien-hoa, vinh-cuu…), with the former province of Bình Phước (tinh-binh-phuoc).\n"
        "\n"
        "Devices are invented: each commune keeps the devices (same ids, addresses and accounts) of\n"
        "one former commune's site, the one with its name where there is one, else the first named.\n"
        "People are named by their posts."
    )
    out.add()
    levels = (("province", "Tỉnh"), ("commune", "Xã / phường"))
    hcc = Body(
        "hcc",
        HCC_2025,
        "province",
        "5.3",
        (),
        "The provincial centre (Trung tâm Hành chính công until 2025); manages its own cameras.",
    )
    bodies = [hcc if body.id == "hcc" else body for body in PROVINCE_BODIES]
    write_top(out, levels, (*bodies, COMMUNE_BODY_2025))
    used = {device.credentials for device in root_devices()}
    district_of = {d.id: d for d in districts}
    devices: dict[str, list[Device]] = {}
    for position, unit in enumerate(units, start=1):
        if unit.primary is not None:
            devices[unit.id] = commune_devices(unit.primary, district_of[unit.primary.district_id])
        else:
            # A former Bình Phước commune (or one missing from the data): seeded by its id.
            owner = next((p.id for p in unit.merged_from if not p.part), f"{unit.origin}.{unit.key}")
            devices[unit.id] = site_devices(owner, (100, position), f"site-{unit.origin}")
        used.update(device.credentials for device in devices[unit.id])
    write_credentials(out, sorted(used), SECRET_FILE)
    out.add("units:")
    root = {
        "id": PROVINCE_ID,
        "name": PROVINCE_NAME,
        "level": "province",
        "managing_body": "hcc",
        "site": f"{HCC_2025} Đồng Nai",
    }
    abolished = [Predecessor(district.id, district.name) for district in districts]
    write_unit(
        out,
        root,
        root_devices(),
        [*abolished, Predecessor(BINH_PHUOC_ID, BINH_PHUOC_NAME)],
        [
            "The province's own site keeps its devices; Bình Phước's provincial centre merged into it.",
            f"merged_from: the {len(abolished)} district-level units of dong-nai.yaml, abolished on "
            "1 July 2025, and\n"
            "the former province of Bình Phước. The footage of their sites and the rights over it pass\n"
            "to the province; Article 5.1 holders, whose rights cover the whole province, keep theirs.\n"
            "No commune succeeds a district, so the footage of the district one-stop sites (Bộ phận một\n"
            "cửa) now sits with the province until an integrator assigns it to a commune.",
        ],
    )
    for unit in units:
        out.add()
        notes = [f"NQ 1662/NQ-UBTVQH15, Điều 1 khoản {unit.clause}: {unit.text}"]
        owner = (
            unit.primary.name if unit.primary else next((p.name for p in unit.merged_from if not p.part), "")
        )
        if owner:
            notes.append(f"Devices: those of the former {in_sentence(owner)}.")
        fields = {
            "id": unit.id,
            "name": unit.name,
            "level": "commune",
            "parent": PROVINCE_ID,
            "managing_body": "ubnd-xa",
            "site": f"Trung tâm Phục vụ hành chính công {in_sentence(unit.name)}",
        }
        write_unit(out, fields, devices[unit.id], unit.merged_from, notes)
    out.add()
    people = [*province_people(HCC_2025), *(commune_leader(u.id, u.name, u.kind) for u in units)]
    write_people(out, people)
    out.add()
    write_storage(out)
    path = out_dir / "dong-nai-2025.yaml"
    path.write_text(out.text(), encoding="utf-8")
    return path


# -- checking ----------------------------------------------------------------------------------


def summary(path: Path) -> str:
    """Counts of a written province, read back with camhub when it is installed."""
    try:
        import camhub
    except ImportError:
        return f"{path.name}: written (camhub is not installed, not checked)"
    try:
        config = camhub.load_config(path)
    except camhub.ConfigError as exc:
        return f"{path.name}: does not load:\n" + "\n".join(f"  {issue}" for issue in exc.issues)
    levels = Counter(unit.level for unit in config.units)
    vendors = Counter(device.vendor for device in config.devices)
    channels = [channel for device in config.devices for channel in device.effective_channels()]
    microphones = sum(channel.kind.value == "microphone" for channel in channels)
    return (
        f"{path.name}: units {dict(levels)}, devices {len(config.devices)} {dict(vendors)}, "
        f"channels {len(channels)} ({microphones} microphones, {sum(c.has_audio for c in channels)} with sound), "
        f"people {len(config.people)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="the unit list (YAML)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder to write the configs into (it needs secrets/demo-password to load them)",
    )
    args = parser.parse_args(argv)
    data = yaml.safe_load(args.data.read_text(encoding="utf-8"))
    warnings: list[str] = []
    notes: list[str] = []
    districts = read_districts(data, warnings)
    args.out.mkdir(parents=True, exist_ok=True)
    written = write_2021(districts, args.out)
    units = read_new_units(data, warnings)
    resolve_dong_nai([u for u in units if u.origin == "dong-nai"], districts, warnings, notes)
    resolve_binh_phuoc([u for u in units if u.origin == "binh-phuoc"], warnings)
    clashes = check_new_ids(units, districts)
    if clashes:
        print("dong-nai-2025.yaml not written, its unit ids clash:", file=sys.stderr)
        for clash in clashes:
            print(f"- {clash}", file=sys.stderr)
        return 1
    written.append(write_2025(units, districts, args.out))
    print(f"wrote {len(written)} files under {args.out}")
    for path in (written[0], written[-1]):
        print(summary(path))
    if notes:
        print(f"\n{len(notes)} names resolved by elimination:", file=sys.stderr)
        for note in notes:
            print(f"- {note}", file=sys.stderr)
    if warnings:
        print(f"\n{len(warnings)} warnings:", file=sys.stderr)
        for warning in warnings:
            print(f"- {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Provinces shared by the tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "configs"

#: A small, valid three-tier province; tests change one thing in it at a time.
BASE = textwrap.dedent(
    """\
    province: {id: thu, name: Tỉnh Thử Nghiệm}
    levels:
      - {id: province, name: Tỉnh}
      - {id: district, name: Huyện}
      - {id: commune, name: Xã}
    bodies:
      - {id: hcc, name: Trung tâm Hành chính công, level: province, article5: "5.3"}
      - {id: vp-ubnd-tinh, name: Văn phòng UBND tỉnh, level: province, article5: "5.1"}
      - {id: so-khcn, name: Sở Khoa học và Công nghệ, level: province, roles: [ict]}
      - {id: ubnd-huyen, name: UBND huyện, level: district, article5: "5.2"}
      - {id: ubnd-xa, name: UBND xã, level: commune, article5: "5.3"}
    credentials:
      site: {username: admin, password: {$env: CAMHUB_TEST_PASSWORD}}
    units:
      - {id: thu, name: Tỉnh Thử Nghiệm, level: province, managing_body: hcc}
      - {id: huyen-a, name: Huyện Định Quán, level: district, parent: thu, managing_body: ubnd-huyen}
      - id: xa-b
        name: Xã Phú Điền
        level: commune
        parent: huyen-a
        managing_body: ubnd-xa
        devices:
          - {id: cam-1, vendor: hikvision, kind: camera, host: 127.0.0.1, credentials: site}
    people:
      - id: lanh-dao-vp
        name: Lãnh đạo Văn phòng UBND tỉnh
        positions: [{body: vp-ubnd-tinh, unit: thu, leader: true}]
    """
)
PASSWORD = "pw-Đồng-Nai-7f3a9c"

"""The peer captures shipped in ``camhub.testing`` are the recorded device responses, unchanged

``SHA256SUMS`` beside them was computed from ``shared/fixtures/peer-captures`` (the captures as
other projects recorded them); a checkout that has ``shared/`` beside it compares with it too.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

CAPTURES = Path(str(files("camhub.testing") / "captures"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "peer-captures"


def _sums() -> dict[str, str]:
    lines = (CAPTURES / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def test_every_shipped_capture_is_the_recorded_one() -> None:
    shipped = {
        path.relative_to(CAPTURES).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in CAPTURES.rglob("*")
        if path.is_file() and path.name != "SHA256SUMS"
    }
    assert shipped == _sums()
    assert len(shipped) >= 20 and "dahua/cgi_eventManager_attach_videomotion.txt" in shipped
    if SHARED.is_dir():  # beside the shared fixtures (not in a clean checkout elsewhere): the same
        shared = {
            path.relative_to(SHARED).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in SHARED.rglob("*")
            if path.is_file()
        }
        assert shared == shipped

"""The built-in folder store: the storage conformance kit, and what only a folder can show."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from camhub.errors import CamhubError
from camhub.storage import (
    DigestMismatch,
    FilesystemStorage,
    InvalidKey,
    ObjectLocked,
    StorageError,
    segment_key,
    sha256_file,
    validate_key,
)
from camhub.testing.storage_kit import StorageConformance


@pytest.fixture(autouse=True)
def _report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMHUB_CONFORMANCE_REPORT", str(tmp_path / "conformance-report.json"))


class TestFilesystemConformance(StorageConformance):
    backend = "filesystem"
    large_object_peak = 8 * 1024 * 1024

    @contextmanager
    def storage(self, tmp_path: Path) -> Iterator[FilesystemStorage]:
        with FilesystemStorage(tmp_path / "central") as store:
            yield store


def test_error_family() -> None:
    for cls in (InvalidKey, ObjectLocked, DigestMismatch):
        assert issubclass(cls, StorageError)
    assert issubclass(StorageError, CamhubError)


def test_segment_key_follows_design() -> None:
    start = datetime(2025, 7, 1, 23, 59, 30, tzinfo=UTC)
    key = segment_key("ha-noi", "cam-1", 2, start, start + timedelta(minutes=1))
    assert key == "ha-noi/cam-1/2/2025-07-01/235930_000030.mp4"
    with pytest.raises(ValueError, match="timezone"):
        segment_key("p", "d", 1, datetime(2025, 7, 1), datetime(2025, 7, 1))
    assert validate_key(key) == key


def test_nothing_but_the_object_and_its_sidecar(tmp_path: Path) -> None:
    store = FilesystemStorage(tmp_path)
    src = tmp_path.parent / f"{tmp_path.name}-src"
    src.write_bytes(b"abc")
    sha, size = sha256_file(src)
    store.put("p/d/1/2025-07-01/000000_000100.mp4", src, sha)
    with pytest.raises(DigestMismatch):
        store.put("p/d/1/2025-07-01/000100_000200.mp4", src, "0" * 64)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert names == ["p/d/1/2025-07-01/000000_000100.mp4", "p/d/1/2025-07-01/000000_000100.mp4.meta.json"]
    assert size == 3


def test_interrupted_put_is_not_an_object(tmp_path: Path) -> None:
    """A sidecar whose file is missing or of another size (a crash between the renames) is not listed."""
    store = FilesystemStorage(tmp_path)
    src = tmp_path / "src"
    src.write_bytes(b"abcdef")
    key = "p/d/1/2025-07-01/000000_000100.mp4"
    store.put(key, src, sha256_file(src)[0])
    (tmp_path / key).write_bytes(b"abc")  # truncated behind the store's back
    assert store.head(key) is None
    assert list(store.list("p/")) == []


def test_lock_is_software_only(tmp_path: Path) -> None:
    """The folder store refuses to delete a locked object, but the folder is not WORM."""
    store = FilesystemStorage(tmp_path)
    assert not store.capabilities.enforced_by_store
    src = tmp_path / "src"
    src.write_bytes(b"x")
    key = "p/d/1/2025-07-01/000000_000100.mp4"
    store.put(key, src, sha256_file(src)[0])
    store.lock(key, datetime.now(UTC) + timedelta(days=7))
    with pytest.raises(ObjectLocked):
        store.delete(key)
    with pytest.raises(ValueError, match="timezone"):
        store.lock(key, datetime(2030, 1, 1))
    os.unlink(tmp_path / key)  # nothing stops the operating system
    assert store.head(key) is None


def test_expired_lock_allows_delete(tmp_path: Path) -> None:
    store = FilesystemStorage(tmp_path)
    src = tmp_path / "src"
    src.write_bytes(b"x")
    key = "p/d/1/2025-07-01/000000_000100.mp4"
    store.put(key, src, sha256_file(src)[0])
    store.lock(key, datetime.now(UTC) - timedelta(seconds=1))
    store.delete(key)
    assert store.head(key) is None


def test_corrupt_object_is_reported_by_get(tmp_path: Path) -> None:
    store = FilesystemStorage(tmp_path / "s")
    src = tmp_path / "src"
    src.write_bytes(b"footage")
    key = "p/d/1/2025-07-01/000000_000100.mp4"
    store.put(key, src, sha256_file(src)[0])
    (tmp_path / "s" / key).write_bytes(b"f0otage")  # a bit flipped at rest
    dest = tmp_path / "out.mp4"
    with pytest.raises(DigestMismatch):
        store.get(key, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_key_under_an_object_is_refused(tmp_path: Path) -> None:
    store = FilesystemStorage(tmp_path / "s")
    src = tmp_path / "src"
    src.write_bytes(b"x")
    sha = sha256_file(src)[0]
    store.put("p/d", src, sha)
    with pytest.raises(InvalidKey):
        store.put("p/d/e.mp4", src, sha)
    with pytest.raises(InvalidKey):
        store.put("p", src, sha)

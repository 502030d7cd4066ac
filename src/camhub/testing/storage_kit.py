"""The storage conformance kit: test classes a backend subclasses to prove it keeps footage safely.

Subclass :class:`StorageConformance` in the backend's tests and provide :meth:`storage`, a
context manager yielding a fresh, empty :class:`~camhub.storage.Storage` (a new folder, or a new
prefix or bucket of an S3-compatible store)::

    class TestFolder(StorageConformance):
        backend = "filesystem"

        @contextmanager
        def storage(self, tmp_path):
            yield FilesystemStorage(tmp_path / "store")

The kit is capability-gated (R-10.2): the retention-lock checks run only when the backend
declares ``retention_lock``, the legal-hold checks only with ``legal_hold``; everything else runs
for every backend. Every outcome is written to ``conformance-report.json`` (or
``$CAMHUB_CONFORMANCE_REPORT``) under ``storage``, keyed by backend.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from camhub.storage import (
    DigestMismatch,
    InvalidKey,
    ObjectLocked,
    ObjectNotFound,
    Storage,
    StorageError,
    StoredObject,
    segment_key,
)
from camhub.testing.kit import write_report

__all__ = ["StorageConformance"]

_START = datetime(2025, 7, 1, 8, 0, 0, tzinfo=UTC)
#: Keys with Vietnamese names (NFC), as provinces and devices are named in real configurations.
_VIETNAMESE_KEY = "hà-nội/cam-cổng-chính/1/2025-07-01/080000_080100.mp4"
_BAD_KEYS = (
    "",
    "/abs/olute.mp4",
    "a/../b.mp4",
    "../escape.mp4",
    "a//b.mp4",
    "a/./b.mp4",
    "a\\b.mp4",
    "a/b.mp4/",
    "a/\x00b.mp4",
    "a/\nb.mp4",
    "a/.hidden.mp4",
    "a/b.mp4.meta.json",
    "ha\u0300-no\u0323i/x.mp4",  # decomposed (NFD) Vietnamese
    "x" * 1025,
)


class _NotDeclared(Exception):  # a control-flow signal, not an error
    def __init__(self, capability: str) -> None:
        self.capability = capability


class StorageConformance:
    """Conformance tests for a :class:`~camhub.storage.Storage`; subclass and provide :meth:`storage`.

    Test methods are plain synchronous pytest tests taking pytest's ``tmp_path``.
    """

    #: The backend name the report is filed under (the YAML ``backend:`` value).
    backend: ClassVar[str] = ""
    #: Size of the large-object check; it must be streamed, never held in memory.
    large_object_size: ClassVar[int] = 64 * 1024 * 1024
    #: Most memory (tracemalloc peak, bytes) a put and a get of the large object may allocate.
    large_object_peak: ClassVar[int] = 24 * 1024 * 1024
    #: Threads (and objects) of the concurrent-put check.
    concurrent_puts: ClassVar[int] = 8

    _results: ClassVar[dict[str, dict[str, str]]] = {}

    def storage(self, tmp_path: Path) -> AbstractContextManager[Storage]:
        """A context manager yielding a fresh, empty store (subclasses provide it)."""
        raise TypeError(f"{type(self).__name__} must define storage()")

    # -- machinery ----------------------------------------------------------------------------
    def _run(
        self, tmp_path: Path, capability: str | None, name: str, check: Callable[[Storage, Path], None]
    ) -> None:
        key = f"{capability or 'always'}:{name}"
        files = tmp_path / "kit-files"
        files.mkdir(exist_ok=True)
        try:
            with self.storage(tmp_path) as store:
                if capability is not None and not getattr(store.capabilities, capability):
                    raise _NotDeclared(capability)
                check(store, files)
        except _NotDeclared as exc:
            self._record(key, "skipped")
            pytest.skip(f"capability {exc.capability!r} is not declared by the backend")
        except BaseException:
            self._record(key, "failed")
            raise
        self._record(key, "passed")

    def _record(self, key: str, outcome: str) -> None:
        backend = self.backend or type(self).__name__
        results = StorageConformance._results.setdefault(backend, {})
        results[key] = outcome
        write_report("storage", backend, results)

    # -- always -------------------------------------------------------------------------------
    def test_round_trip(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            data = os.urandom(300_000) + "Cổng chính — phường Hoàn Kiếm".encode()
            src = _write(files / "src.mp4", data)
            before = datetime.now(UTC) - timedelta(minutes=5)
            stored = store.put(_VIETNAMESE_KEY, src, _sha(data))
            _check_object(stored, _VIETNAMESE_KEY, data)
            assert before <= stored.stored_at <= datetime.now(UTC) + timedelta(minutes=5), stored.stored_at
            assert stored.stored_at.utcoffset() == timedelta(0), "stored_at is in UTC"
            head = store.head(_VIETNAMESE_KEY)
            assert head is not None, "head() of a stored object is None"
            _check_object(head, _VIETNAMESE_KEY, data)
            with store.open(_VIETNAMESE_KEY) as f:
                assert f.read() == data, "open() returned other bytes"
            dest = files / "tải về.mp4"
            got = store.get(_VIETNAMESE_KEY, dest)
            assert dest.read_bytes() == data, "get() wrote other bytes"
            assert got.sha256 == _sha(data)
            assert [o.key for o in store.list("hà-nội/")] == [_VIETNAMESE_KEY]
            # Replacing an unlocked object is allowed; the new bytes win.
            data2 = b"second version"
            stored2 = store.put(_VIETNAMESE_KEY, _write(files / "v2.mp4", data2), _sha(data2).upper())
            _check_object(stored2, _VIETNAMESE_KEY, data2)
            with store.open(_VIETNAMESE_KEY) as f:
                assert f.read() == data2
            # An empty object is an object.
            empty_key = "p/d/1/2025-07-01/000000_000000.mp4"
            store.put(empty_key, _write(files / "empty", b""), _sha(b""))
            head = store.head(empty_key)
            assert head is not None and head.size == 0

        self._run(tmp_path, None, "round_trip", check)

    def test_digest_verified(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            key = segment_key("p", "d", 1, _START, _START + timedelta(minutes=1))
            data = os.urandom(100_000)
            src = _write(files / "src.mp4", data)
            wrong = _sha(data[:-1] + bytes([data[-1] ^ 1]))
            with pytest.raises(DigestMismatch):
                store.put(key, src, wrong)
            assert store.head(key) is None, "a refused put left an object behind"
            assert list(store.list("")) == [], "a refused put left something listed"
            for malformed in ("", "abc", "g" * 64, _sha(data)[:-1]):
                with pytest.raises(DigestMismatch):
                    store.put(key, src, malformed)
            assert store.head(key) is None
            # A refused put does not disturb the object already there.
            store.put(key, src, _sha(data))
            with pytest.raises(DigestMismatch):
                store.put(key, _write(files / "other", b"other"), wrong)
            head = store.head(key)
            assert head is not None and head.sha256 == _sha(data), "a refused put replaced the object"
            with store.open(key) as f:
                assert f.read() == data

        self._run(tmp_path, None, "digest_verified", check)

    def test_head_and_list_by_prefix(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            keys = []
            for device in ("cam-1", "cam-10", "cam-2"):
                for minute in (2, 0, 1):
                    start = _START + timedelta(minutes=minute)
                    keys.append(segment_key("ha-noi", device, 1, start, start + timedelta(minutes=1)))
            keys.append(segment_key("hai-phong", "cam-1", 1, _START, _START + timedelta(minutes=1)))
            for i, key in enumerate(keys):
                data = f"object {i}".encode()
                store.put(key, _write(files / f"{i}", data), _sha(data))
            assert store.head("ha-noi/cam-1/1/2025-07-01/999999_999999.mp4") is None
            everything = list(store.list())
            assert [o.key for o in everything] == sorted(keys), "list() is in key order"
            by_key = {o.key: o for o in everything}
            for i, key in enumerate(keys):
                _check_object(by_key[key], key, f"object {i}".encode())
            cam1 = [o.key for o in store.list("ha-noi/cam-1/")]
            assert cam1 == sorted(k for k in keys if k.startswith("ha-noi/cam-1/")), cam1
            assert len(cam1) == 3, "a prefix is not a folder glob: cam-10 is not under cam-1/"
            partial = [o.key for o in store.list("ha-noi/cam-1")]
            assert len(partial) == 6, "a prefix need not end at a '/'"
            assert [o.key for o in store.list("ha")] == sorted(keys)
            assert list(store.list("nowhere/")) == []

        self._run(tmp_path, None, "head_and_list_by_prefix", check)

    def test_delete(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            key = segment_key("p", "d", 1, _START, _START + timedelta(minutes=1))
            other = segment_key("p", "d", 1, _START + timedelta(minutes=1), _START + timedelta(minutes=2))
            for k in (key, other):
                store.put(k, _write(files / "x", b"x"), _sha(b"x"))
            store.delete(key)
            assert store.head(key) is None, "a deleted object is still there"
            assert [o.key for o in store.list("p/")] == [other], "delete removed the wrong objects"
            with pytest.raises(ObjectNotFound):
                store.open(key)
            with pytest.raises(ObjectNotFound):
                store.get(key, files / "gone")
            with pytest.raises(ObjectNotFound):
                store.delete(key)
            # A deleted key can be written again.
            store.put(key, _write(files / "y", b"y"), _sha(b"y"))
            assert store.head(key) is not None

        self._run(tmp_path, None, "delete", check)

    def test_keys_validated(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            src = _write(files / "x", b"x")
            for bad in _BAD_KEYS:
                with pytest.raises(InvalidKey):
                    store.put(bad, src, _sha(b"x"))
                for call in (store.head, store.open, store.delete):
                    with pytest.raises(InvalidKey):
                        call(bad)
            assert list(store.list()) == [], "an invalid key was stored"
            assert not any(p.name != "x" for p in files.iterdir()), "an invalid key wrote outside the store"

        self._run(tmp_path, None, "keys_validated", check)

    def test_large_object_streamed(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            size = self.large_object_size
            src = files / "large.mp4"
            digest = hashlib.sha256()
            block = os.urandom(1024 * 1024)
            with src.open("wb") as f:
                for i in range(size // len(block)):
                    chunk = i.to_bytes(8, "big") + block[8:]
                    digest.update(chunk)
                    f.write(chunk)
            sha = digest.hexdigest()
            key = segment_key("p", "large", 1, _START, _START + timedelta(hours=1))
            tracemalloc.start()
            try:
                stored = store.put(key, src, sha)
                _, put_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                got = store.get(key, files / "large-back.mp4")
                _, get_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert stored.size == size and stored.sha256 == sha
            assert got.sha256 == sha
            assert (files / "large-back.mp4").stat().st_size == size
            limit = self.large_object_peak
            assert put_peak < limit, f"put() allocated {put_peak} bytes for {size}: it is not streamed"
            assert get_peak < limit, f"get() allocated {get_peak} bytes for {size}: it is not streamed"
            head = store.head(key)
            assert head is not None and head.sha256 == sha and head.size == size

        self._run(tmp_path, None, "large_object_streamed", check)

    def test_concurrent_puts(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            n = self.concurrent_puts
            payloads = {
                segment_key(
                    "p", f"d{i % 3}", 1, _START + timedelta(minutes=i), _START + timedelta(minutes=i + 1)
                ): (os.urandom(50_000 + i))
                for i in range(n)
            }
            shared_key = segment_key("p", "shared", 1, _START, _START + timedelta(minutes=1))
            errors: list[BaseException] = []
            barrier = threading.Barrier(n)

            def worker(i: int, key: str, data: bytes) -> None:
                try:
                    src = _write(files / f"c{i}", data)
                    barrier.wait(timeout=30)
                    store.put(key, src, _sha(data))
                    store.put(shared_key, src, _sha(data))  # every thread writes the same key too
                except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                    errors.append(exc)

            threads = [
                threading.Thread(target=worker, args=(i, k, d)) for i, (k, d) in enumerate(payloads.items())
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, f"concurrent puts failed: {errors!r}"
            for key, data in payloads.items():
                head = store.head(key)
                assert head is not None, f"{key} is missing"
                _check_object(head, key, data)
                with store.open(key) as f:
                    assert f.read() == data
            shared = store.head(shared_key)
            assert shared is not None
            assert shared.sha256 in {_sha(d) for d in payloads.values()}, "the shared key holds mixed bytes"
            with store.open(shared_key) as f:
                assert _sha(f.read()) == shared.sha256, "the shared key's bytes and digest disagree"
            assert len(list(store.list("p/"))) == n + 1

        self._run(tmp_path, None, "concurrent_puts", check)

    def test_not_found(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            key = "p/d/1/2025-07-01/000000_000100.mp4"
            assert store.head(key) is None
            with pytest.raises(ObjectNotFound):
                store.open(key)
            with pytest.raises(ObjectNotFound):
                store.delete(key)
            with pytest.raises(StorageError):
                store.put(key, files / "does-not-exist", _sha(b""))
            assert store.head(key) is None

        self._run(tmp_path, None, "not_found", check)

    # -- retention lock -----------------------------------------------------------------------
    def test_locked_object_delete_refused(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            key = segment_key("p", "d", 1, _START, _START + timedelta(minutes=1))
            data = b"evidence"
            store.put(key, _write(files / "x", data), _sha(data))
            until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
            locked = store.lock(key, until)
            assert locked.retain_until is not None and abs(locked.retain_until - until) <= timedelta(
                seconds=1
            )
            head = store.head(key)
            assert head is not None and head.retain_until is not None, "head() does not show the lock"
            assert abs(head.retain_until - until) <= timedelta(seconds=1), head.retain_until
            assert head.locked()
            with pytest.raises(ObjectLocked):
                store.delete(key)
            with pytest.raises(ObjectLocked):
                store.lock(key, until - timedelta(hours=1))  # a lock is never shortened
            with pytest.raises(ObjectLocked):
                store.put(key, _write(files / "y", b"tampered"), _sha(b"tampered"))
            store.lock(key, until + timedelta(hours=1))  # but it can be extended
            head = store.head(key)
            assert head is not None and head.retain_until is not None
            assert head.retain_until >= until + timedelta(minutes=59)
            with store.open(key) as f:
                assert f.read() == data, "a locked object was changed"

        self._run(tmp_path, "retention_lock", "locked_object_delete_refused", check)

    # -- legal hold ---------------------------------------------------------------------------
    def test_legal_hold(self, tmp_path: Path) -> None:
        def check(store: Storage, files: Path) -> None:
            key = segment_key("p", "d", 1, _START, _START + timedelta(minutes=1))
            store.put(key, _write(files / "x", b"held"), _sha(b"held"))
            assert store.hold(key, True).legal_hold
            head = store.head(key)
            assert head is not None and head.legal_hold, "head() does not show the hold"
            with pytest.raises(ObjectLocked):
                store.delete(key)
            assert not store.hold(key, False).legal_hold
            head = store.head(key)
            assert head is not None and not head.legal_hold
            store.delete(key)
            assert store.head(key) is None

        self._run(tmp_path, "legal_hold", "legal_hold", check)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _check_object(obj: StoredObject, key: str, data: bytes) -> None:
    assert obj.key == key, f"key {obj.key!r} != {key!r}"
    assert obj.size == len(data), f"{key}: size {obj.size} != {len(data)}"
    assert obj.sha256 == _sha(data), f"{key}: sha256 {obj.sha256} != {_sha(data)}"
    assert obj.stored_at.tzinfo is not None, "stored_at must be timezone-aware"

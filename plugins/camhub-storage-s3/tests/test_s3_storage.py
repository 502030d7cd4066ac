"""S3Storage against a real SeaweedFS (``weed mini``, started by these tests): the storage
conformance kit on a bucket with object lock and on one without, and the store itself refusing
to delete a locked object."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions
import pytest
from seaweed_peer import SeaweedS3, require_weed

from camhub.plugins import PluginHost
from camhub.secrets import Secret
from camhub.storage import DigestMismatch, ObjectLocked, StorageError, StorageUnavailable
from camhub.testing.storage_kit import StorageConformance
from camhub_storage_s3 import S3Storage, S3StorageConfig

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

LOCKED_BUCKET = "camhub-locked"
PLAIN_BUCKET = "camhub-plain"


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    weed = require_weed()
    with SeaweedS3(weed) as peer:
        client = _raw_client(peer)
        client.create_bucket(Bucket=LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
        client.create_bucket(Bucket=PLAIN_BUCKET)
        yield peer


@pytest.fixture(autouse=True)
def _report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMHUB_CONFORMANCE_REPORT", str(tmp_path / "conformance-report.json"))


def _raw_client(peer: SeaweedS3) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=peer.endpoint,
        region_name="us-east-1",
        aws_access_key_id=peer.access_key,
        aws_secret_access_key=peer.secret_key,
    )


def _config(peer: SeaweedS3, bucket: str, **changes: object) -> S3StorageConfig:
    values: dict[str, object] = {
        "backend": "s3",
        "endpoint": peer.endpoint,
        "bucket": bucket,
        "access_key": Secret(peer.access_key, "$env:TEST_S3_ACCESS"),
        "secret_key": Secret(peer.secret_key, "$env:TEST_S3_SECRET"),
        "prefix": f"t-{uuid.uuid4().hex[:12]}",  # every test its own namespace
        "multipart_threshold_mb": 5,
        "part_size_mb": 5,
    }
    values.update(changes)
    return S3StorageConfig(**values)  # type: ignore[arg-type]


class _SeaweedKit(StorageConformance):
    bucket = ""
    # A multipart upload holds one 5 MiB part (and botocore a copy of it) at a time.
    large_object_peak = 24 * 1024 * 1024
    large_object_size = 32 * 1024 * 1024  # keeps the run short; still 7 parts

    @pytest.fixture(autouse=True)
    def _peer(self, seaweed: SeaweedS3) -> None:
        self.peer = seaweed

    @contextmanager
    def storage(self, tmp_path: Path) -> Iterator[S3Storage]:
        with S3Storage(_config(self.peer, self.bucket)) as store:
            yield store


class TestSeaweedObjectLock(_SeaweedKit):
    backend = "s3"
    bucket = LOCKED_BUCKET


class TestSeaweedPlainBucket(_SeaweedKit):
    backend = "s3-plain-bucket"
    bucket = PLAIN_BUCKET


def test_capabilities_follow_the_bucket(seaweed: SeaweedS3) -> None:
    with (
        S3Storage(_config(seaweed, LOCKED_BUCKET)) as locked,
        S3Storage(_config(seaweed, PLAIN_BUCKET)) as plain,
    ):
        assert locked.capabilities.retention_lock and locked.capabilities.enforced_by_store
        assert not plain.capabilities.retention_lock and not plain.capabilities.legal_hold


def test_the_store_itself_refuses_to_delete_a_locked_object(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """Not camhub's check: the raw S3 DELETE of the locked version is refused by SeaweedFS."""
    config = _config(seaweed, LOCKED_BUCKET)
    store = S3Storage(config)
    src = tmp_path / "seg.mp4"
    src.write_bytes(b"evidence" * 1000)
    key = "ha-noi/cam-1/1/2025-07-01/080000_080100.mp4"
    store.put(key, src, hashlib.sha256(src.read_bytes()).hexdigest())
    store.lock(key, datetime.now(UTC) + timedelta(days=1))
    raw = _raw_client(seaweed)
    full = f"{config.prefix}/{key}"
    version = raw.head_object(Bucket=LOCKED_BUCKET, Key=full)["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        raw.delete_object(Bucket=LOCKED_BUCKET, Key=full, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # COMPLIANCE cannot be shortened, even by the raw client.
    with pytest.raises(botocore.exceptions.ClientError):
        raw.put_object_retention(
            Bucket=LOCKED_BUCKET,
            Key=full,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(hours=1)},
        )
    with pytest.raises(ObjectLocked):
        store.delete(key)
    assert (
        raw.get_object(Bucket=LOCKED_BUCKET, Key=full, VersionId=version)["Body"].read() == src.read_bytes()
    )


def test_object_lock_days_locks_every_put(seaweed: SeaweedS3, tmp_path: Path) -> None:
    store = S3Storage(_config(seaweed, LOCKED_BUCKET, object_lock_days=7))
    src = tmp_path / "seg.mp4"
    src.write_bytes(b"x" * (6 * 1024 * 1024))  # multipart
    small = tmp_path / "small.mp4"
    small.write_bytes(b"small")
    for key, path in (
        ("p/d/1/2025-07-01/000000_000100.mp4", src),
        ("p/d/1/2025-07-01/000100_000200.mp4", small),
    ):
        info = store.put(key, path, hashlib.sha256(path.read_bytes()).hexdigest())
        assert info.retain_until is not None
        assert info.retain_until > datetime.now(UTC) + timedelta(days=6, hours=23)
        with pytest.raises(ObjectLocked):
            store.delete(key)


def test_multipart_wrong_digest_leaves_nothing(seaweed: SeaweedS3, tmp_path: Path) -> None:
    config = _config(seaweed, PLAIN_BUCKET)
    store = S3Storage(config)
    src = tmp_path / "big.mp4"
    src.write_bytes(b"y" * (11 * 1024 * 1024))
    with pytest.raises(DigestMismatch):
        store.put("p/d/1/2025-07-01/000000_000100.mp4", src, "0" * 64)
    raw = _raw_client(seaweed)
    uploads = raw.list_multipart_uploads(Bucket=PLAIN_BUCKET, Prefix=config.prefix).get("Uploads", [])
    assert uploads == [], "an aborted multipart upload was left behind"
    assert list(store.list()) == []


def test_store_rejects_a_wrong_checksum_itself(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """The whole-object SHA-256 header is checked by SeaweedFS (not only by camhub)."""
    raw = _raw_client(seaweed)
    with pytest.raises(botocore.exceptions.ClientError):
        raw.put_object(
            Bucket=PLAIN_BUCKET,
            Key="raw/wrong.mp4",
            Body=b"some bytes",
            ChecksumSHA256="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )


def test_errors_name_no_secret(seaweed: SeaweedS3, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as bad_key:
        S3Storage(_config(seaweed, PLAIN_BUCKET, secret_key=Secret("not-the-secret-xyz", "$env:X")))
    assert "not-the-secret-xyz" not in str(bad_key.value)
    assert seaweed.secret_key not in repr(_config(seaweed, PLAIN_BUCKET))
    with pytest.raises(StorageUnavailable):
        S3Storage(_config(seaweed, PLAIN_BUCKET, endpoint="http://127.0.0.1:9"))


def test_plain_http_only_on_loopback(seaweed: SeaweedS3) -> None:
    with pytest.raises(StorageError, match="https"):
        S3Storage(_config(seaweed, PLAIN_BUCKET, endpoint="http://s3.example.org"))


def test_registered_through_the_plugin_host() -> None:
    host = PluginHost.from_installed()
    assert host.storage_config_types()["s3"] is S3StorageConfig

"""camhub storage backend for any S3-compatible store (SeaweedFS, MinIO, Ceph RGW, AWS S3).

* Every object is sent with its SHA-256 (``ChecksumAlgorithm=SHA256``): a single PUT carries
  the whole-object digest and the store refuses the bytes if they differ; a multipart upload
  carries each part's SHA-256 (verified by the store, part by part) while the whole-object
  digest is computed over exactly the bytes sent and the upload is aborted — nothing left
  behind — if it is not the announced one. The digest is kept in the object's metadata
  (``x-amz-meta-camhub-sha256``) for :meth:`S3Storage.head`.
* Object lock: on a bucket created with object lock, :meth:`S3Storage.lock` sets a retention
  (COMPLIANCE or GOVERNANCE) and :meth:`S3Storage.hold` a legal hold, and the store itself
  refuses to delete a locked version (``capabilities.enforced_by_store``). With
  ``object_lock_days`` every put is locked for that many days.
* TLS is verified (optionally against ``ca_bundle``); plain ``http://`` is accepted only for a
  loopback endpoint (tests). Keys are secret references, never plain text.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import ipaddress
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NoReturn, cast
from urllib.parse import urlsplit

import attrs
import boto3
import botocore.config
import botocore.exceptions

from camhub.hookspecs import hookimpl
from camhub.model import StorageConfig, setting
from camhub.plugins import StorageBackendSpec
from camhub.secrets import Secret
from camhub.storage import (
    DigestMismatch,
    InvalidKey,
    ObjectLocked,
    ObjectNotFound,
    Storage,
    StorageCapabilities,
    StorageError,
    StorageUnavailable,
    StorageUnsupported,
    StoredObject,
    validate_key,
    validate_sha256,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectLockRetentionTypeDef

__all__ = ["S3Storage", "S3StorageConfig", "camhub_register_storage_backends"]

_MiB = 1024 * 1024
_SHA_META = "camhub-sha256"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"}
_NO_LOCK = {
    "NoSuchObjectLockConfiguration",
    "ObjectLockConfigurationNotFoundError",
    "NoSuchObjectLegalHold",
    "NoSuchObjectRetention",
    "NoSuchKey",
    "404",
}
_REFUSED = {"AccessDenied", "InvalidRequest", "ObjectLocked"}


@attrs.frozen(kw_only=True)
class S3StorageConfig(StorageConfig):
    """An S3-compatible bucket (SeaweedFS, MinIO, Ceph RGW, AWS S3)."""

    endpoint: str = setting(
        "Endpoint URL, e.g. `https://s3.province.gov.vn`; plain `http://` only on loopback.",
        pattern=r"^https?://[^\s@/]+(/.*)?$",
    )
    bucket: str = setting("Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = setting("Region (most non-AWS stores accept any).", default="us-east-1")
    access_key: Secret = setting("`{$env: NAME}` or `{$file: path}`: the access key id.")
    secret_key: Secret = setting("`{$env: NAME}` or `{$file: path}`: the secret access key.")
    verify_tls: bool = setting("Verify the store's TLS certificate.", default=True)
    ca_bundle: str = setting(
        "PEM file of the CA that signed the store's certificate (empty: system CAs).", default=""
    )
    prefix: str = setting("Prefix of every key in the bucket (empty: none).", default="")
    object_lock_mode: str = setting(
        "Retention mode of locks: `COMPLIANCE` (nobody can shorten it) or `GOVERNANCE`.",
        default="COMPLIANCE",
        pattern=r"^(COMPLIANCE|GOVERNANCE)$",
    )
    object_lock_days: int = setting(
        "Lock every object for this many days when it is stored (0: no lock at put); needs a bucket "
        "with object lock.",
        default=0,
        minimum=0,
        why="Article 6.2: footage stays retrievable centrally for at least 7 days",
    )
    multipart_threshold_mb: int = setting(
        "Files larger than this go up as multipart uploads.", default=16, minimum=5, maximum=5120
    )
    part_size_mb: int = setting("Part size of multipart uploads.", default=8, minimum=5, maximum=5120)
    max_connections: int = setting("Most simultaneous connections to the store.", default=32, minimum=1)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _RawBody(io.RawIOBase):
    """A botocore streaming body as a raw stream (so it can be wrapped in a BufferedReader)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class S3Storage(Storage):
    """A :class:`~camhub.storage.Storage` on an S3-compatible bucket (see the module documentation).

    The bucket must exist. Its object-lock setting decides ``capabilities``; the client is
    thread-safe (one per store, shared by the uploader's threads).
    """

    def __init__(self, config: S3StorageConfig, *, client: S3Client | None = None) -> None:
        self.config = config
        url = urlsplit(config.endpoint)
        if url.scheme not in ("http", "https") or not url.hostname or url.username or url.password:
            raise StorageError(f"endpoint {config.endpoint!r} is not an http(s) URL without credentials")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise StorageError(
                f"endpoint {config.endpoint!r}: plain http is accepted only on loopback; use https"
            )
        self.bucket = config.bucket
        prefix = config.prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self._prefix = f"{prefix}/" if prefix else ""
        self._threshold = config.multipart_threshold_mb * _MiB
        self._part_size = config.part_size_mb * _MiB
        verify: bool | str = config.ca_bundle or config.verify_tls
        self._client: S3Client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region,
            aws_access_key_id=config.access_key.reveal(),
            aws_secret_access_key=config.secret_key.reveal(),
            verify=verify,
            config=botocore.config.Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=config.max_connections,
                connect_timeout=10,
                read_timeout=60,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self.capabilities = self._probe()

    def __repr__(self) -> str:
        return f"S3Storage({self.config.endpoint!r}, bucket={self.bucket!r})"

    def _probe(self) -> StorageCapabilities:
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                raise StorageError(f"bucket {self.bucket!r} does not exist") from None
            if code in ("ObjectLockConfigurationNotFoundError", "NotImplemented", "404"):
                return StorageCapabilities()
            self._fail(exc, None)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, None)
        enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return StorageCapabilities(retention_lock=enabled, legal_hold=enabled, enforced_by_store=enabled)

    # -- helpers
    def _full(self, key: str) -> str:
        return self._prefix + validate_key(key)

    def _fail(self, exc: Exception, key: str | None, *, refused: str = "") -> NoReturn:
        """Translate a botocore error into :mod:`camhub.storage` errors (never with a secret)."""
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _NOT_FOUND:
                raise ObjectNotFound("no such object", key=key) from None
            if code in _DIGEST:
                raise DigestMismatch(f"the store refused the bytes' SHA-256 ({code})", key=key) from None
            if refused and code in _REFUSED:
                raise ObjectLocked(f"{refused} (the store answered {code})", key=key) from None
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "RequestTimeout"):
                raise StorageUnavailable(f"the store failed: {code} (HTTP {status})", key=key) from None
            raise StorageError(f"the store refused the request: {code} (HTTP {status})", key=key) from None
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            raise StorageUnavailable(f"the store cannot be reached: {type(exc).__name__}", key=key) from None
        raise exc

    def _call(self, key: str | None, fn: Callable[[], Any], *, refused: str = "") -> Any:
        try:
            return fn()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self._fail(exc, key, refused=refused)

    def _lock_args(self) -> dict[str, Any]:
        if not self.config.object_lock_days or not self.capabilities.retention_lock:
            return {}
        until = datetime.now(UTC) + timedelta(days=self.config.object_lock_days)
        return {"ObjectLockMode": self.config.object_lock_mode, "ObjectLockRetainUntilDate": until}

    # -- the interface
    def put(self, key: str, path: Path, sha256: str) -> StoredObject:
        full = self._full(key)
        want = validate_sha256(sha256, key=key)
        old = self.head(key)
        if old is not None and old.locked():
            raise ObjectLocked("an object under this key is locked or held; it cannot be replaced", key=key)
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise StorageError(f"no file {str(path)!r} to store: {exc.strerror}", key=key) from None
        if size > self._threshold:
            version = self._put_multipart(key, full, Path(path), want)
        else:
            version = self._put_single(key, full, Path(path), want)
        # The version just written (another thread may already have replaced it under the key).
        info = self._head(key, version)
        if info is None or info.sha256 != want or info.size != size:
            if version is not None or info is None:
                raise StorageError("the store does not show the object just stored", key=key)
            info = StoredObject(key=key, size=size, sha256=want, stored_at=datetime.now(UTC))
        return info

    def _put_single(self, key: str, full: str, path: Path, want: str) -> str | None:
        with path.open("rb") as body:
            answer = self._call(
                key,
                lambda: self._client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(want),
                    Metadata={_SHA_META: want},
                    ContentType="video/mp4",
                    **self._lock_args(),
                ),
            )
        return _version(answer)

    def _put_multipart(self, key: str, full: str, path: Path, want: str) -> str | None:
        created = self._call(
            key,
            lambda: self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                ChecksumAlgorithm="SHA256",
                Metadata={_SHA_META: want},
                ContentType="video/mp4",
                **self._lock_args(),
            ),
        )
        upload_id: str = created["UploadId"]
        done = False
        try:
            whole = hashlib.sha256()
            parts: list[CompletedPartTypeDef] = []
            with path.open("rb") as f:
                number = 1
                while data := f.read(self._part_size):
                    whole.update(data)
                    part_sha = _b64(hashlib.sha256(data).hexdigest())
                    answer = self._call(
                        key,
                        lambda data=data, number=number, part_sha=part_sha: self._client.upload_part(  # type: ignore[misc]
                            Bucket=self.bucket,
                            Key=full,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=data,
                            ChecksumAlgorithm="SHA256",
                            ChecksumSHA256=part_sha,
                        ),
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumSHA256": part_sha})
                    del data
                    number += 1
            got = whole.hexdigest()
            if got != want:
                raise DigestMismatch(f"the bytes have SHA-256 {got}, not {want}", key=key)
            answer = self._call(
                key,
                lambda: self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
            done = True
            return _version(answer)
        finally:
            if not done:
                with contextlib.suppress(Exception):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)

    def open(self, key: str) -> BinaryIO:
        full = self._full(key)
        answer = self._call(key, lambda: self._client.get_object(Bucket=self.bucket, Key=full))
        return io.BufferedReader(_RawBody(answer["Body"]), buffer_size=1024 * 1024)

    def head(self, key: str) -> StoredObject | None:
        return self._head(key, None)

    def _head(self, key: str, version: str | None) -> StoredObject | None:
        full = self._full(key)
        extra: dict[str, Any] = {"VersionId": version} if version else {}
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED", **extra)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            self._fail(exc, key)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, key)
        sha = answer.get("Metadata", {}).get(_SHA_META, "")
        if not sha:
            checksum = answer.get("ChecksumSHA256", "")
            if checksum and "-" not in checksum:
                sha = base64.b64decode(checksum).hex()
            else:
                raise StorageError("the object carries no SHA-256 (not stored by camhub)", key=key)
        retain: datetime | None = answer.get("ObjectLockRetainUntilDate")
        hold = answer.get("ObjectLockLegalHoldStatus") == "ON"
        if (
            self.capabilities.retention_lock
            and not {"ObjectLockMode", "ObjectLockLegalHoldStatus"} & answer.keys()
        ):
            retain, hold = self._lock_state(key, full, extra)
        return StoredObject(
            key=key,
            size=int(answer["ContentLength"]),
            sha256=sha,
            stored_at=answer["LastModified"].astimezone(UTC),
            retain_until=retain.astimezone(UTC) if retain else None,
            legal_hold=hold,
        )

    def _lock_state(self, key: str, full: str, extra: dict[str, Any]) -> tuple[datetime | None, bool]:
        """Retention and hold through their own calls (for stores whose HEAD does not show them)."""
        retain: datetime | None = None
        hold = False
        try:
            retain = self._client.get_object_retention(Bucket=self.bucket, Key=full, **extra)[
                "Retention"
            ].get("RetainUntilDate")
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in _NO_LOCK:
                self._fail(exc, key)
        try:
            status = self._client.get_object_legal_hold(Bucket=self.bucket, Key=full, **extra)[
                "LegalHold"
            ].get("Status")
            hold = status == "ON"
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in _NO_LOCK:
                self._fail(exc, key)
        return retain, hold

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if "\\" in prefix or prefix.startswith("/") or ".." in prefix.split("/"):
            raise InvalidKey("not a valid key prefix", key=prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._prefix + prefix)
        keys: list[str] = []
        try:
            for page in pages:
                keys.extend(item["Key"][len(self._prefix) :] for item in page.get("Contents", []))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self._fail(exc, prefix)
        for key in sorted(keys):
            info = self.head(key)
            if info is not None:
                yield info

    def delete(self, key: str) -> None:
        full = self._full(key)
        if self.head(key) is None:
            raise ObjectNotFound("no such object", key=key)
        if not self.capabilities.retention_lock:
            self._call(key, lambda: self._client.delete_object(Bucket=self.bucket, Key=full))
            return
        # A versioned bucket: a plain DELETE only adds a delete marker (the locked bytes stay and
        # the key looks gone). Delete the versions themselves, so the store enforces the lock.
        versions: list[tuple[str, bool]] = []
        paginator = self._client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                versions += [
                    (v["VersionId"], v.get("IsLatest", False))
                    for v in page.get("Versions", [])
                    if v["Key"] == full
                ]
                versions += [
                    (m["VersionId"], False) for m in page.get("DeleteMarkers", []) if m["Key"] == full
                ]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self._fail(exc, key)
        versions.sort(key=lambda v: not v[1])  # the current version first: if refused, nothing changed
        for version_id, _ in versions:
            self._call(
                key,
                lambda version_id=version_id: self._client.delete_object(  # type: ignore[misc]
                    Bucket=self.bucket, Key=full, VersionId=version_id
                ),
                refused="the store refuses to delete a locked or held object",
            )

    def lock(self, key: str, until: datetime) -> StoredObject:
        if until.tzinfo is None:
            raise ValueError("the lock date must be timezone-aware")
        if not self.capabilities.retention_lock:
            raise StorageUnsupported(f"bucket {self.bucket!r} has no object lock", key=key)
        info = self.head(key)
        if info is None:
            raise ObjectNotFound("no such object", key=key)
        if info.retain_until is not None and until < info.retain_until:
            raise ObjectLocked(f"the lock until {info.retain_until} cannot be shortened", key=key)
        full = self._full(key)
        mode = cast(Literal["COMPLIANCE", "GOVERNANCE"], self.config.object_lock_mode)
        retention: ObjectLockRetentionTypeDef = {"Mode": mode, "RetainUntilDate": until.astimezone(UTC)}
        self._call(
            key,
            lambda: self._client.put_object_retention(
                Bucket=self.bucket,
                Key=full,
                Retention=retention,
            ),
            refused="the store refuses to shorten the lock",
        )
        return self._head_required(key)

    def hold(self, key: str, on: bool) -> StoredObject:
        if not self.capabilities.legal_hold:
            raise StorageUnsupported(f"bucket {self.bucket!r} has no object lock", key=key)
        full = self._full(key)
        self._call(
            key,
            lambda: self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=full, LegalHold={"Status": "ON" if on else "OFF"}
            ),
        )
        return self._head_required(key)

    def _head_required(self, key: str) -> StoredObject:
        info = self.head(key)
        if info is None:
            raise ObjectNotFound("no such object", key=key)
        return info

    def close(self) -> None:
        self._client.close()


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _version(answer: Any) -> str | None:
    version = answer.get("VersionId")
    return str(version) if version and version != "null" else None


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _open_bucket(config: StorageConfig, data_dir: Path) -> S3Storage:
    assert isinstance(config, S3StorageConfig)
    return S3Storage(config)


@hookimpl
def camhub_register_storage_backends(register: Callable[[StorageBackendSpec], None]) -> None:
    register(
        StorageBackendSpec(
            name="s3",
            config_type=S3StorageConfig,
            factory=_open_bucket,
            description="an S3-compatible bucket (SeaweedFS, MinIO, Ceph RGW, AWS) with object lock",
        )
    )

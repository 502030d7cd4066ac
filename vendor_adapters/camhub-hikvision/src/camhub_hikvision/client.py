"""The ISAPI protocol client: Digest-authenticated XML requests, ResponseStatus mapping, no retries.

One :class:`IsapiClient` per device, on camhub's shared ``httpx.AsyncClient`` through
:class:`camhub.net.DeviceHTTP` (deadline, size limit, error mapping). ISAPI explains refusals in
a ``ResponseStatus`` document: ``403`` with ``subStatusCode`` ``notSupport`` is an endpoint the
device does not have (:class:`~camhub.errors.DeviceUnsupported`), ``lowPrivilege`` an account
without the right (:class:`~camhub.errors.DeviceAuthError`).

Credentials are tried once. Hikvision devices lock an account (or the client's address) after a
few failed logins, so after a 401 the client refuses every further request itself, without
contacting the device, until a new adapter is made (after the credentials are fixed).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from camhub.errors import DeviceAuthError, DeviceProtocolError
from camhub.log import get_logger
from camhub.net import DeviceHTTP, Response, parse_xml
from camhub.secrets import Secret
from camhub_hikvision.parse import IsapiStatus, expect_root, response_status, status_error

__all__ = ["IsapiClient"]

XML_HEADERS = {"Content-Type": 'application/xml; charset="UTF-8"'}
#: Bytes of a refused stream's answer read to explain the refusal.
_REFUSAL_LIMIT = 64 * 1024


class IsapiClient:
    """One device's ISAPI over HTTP(S) with Digest authentication.

    :param client: camhub's shared HTTP client.
    :param device_id: named in every error.
    :param base_url: ``http(s)://host:port``, without credentials.
    :param timeout: seconds one request may take, answer included.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        base_url: str,
        *,
        username: str,
        password: Secret,
        timeout: float,
    ) -> None:
        self.device_id = device_id
        self.timeout = timeout
        # One DigestAuth for every request (streams too): httpx reuses the device's challenge.
        self._auth = httpx.DigestAuth(username, password.reveal())
        self.http = DeviceHTTP(client, device_id, base_url, auth=self._auth, timeout=timeout)
        self._refused: DeviceAuthError | None = None

    def __repr__(self) -> str:
        return f"<IsapiClient device={self.device_id!r} base_url={self.http.base_url!r}>"

    @property
    def credentials_refused(self) -> bool:
        """True once the device has refused the credentials (no further request is sent)."""
        return self._refused is not None

    def _guard(self) -> None:
        if self._refused is not None:
            raise DeviceAuthError(
                self.device_id,
                f"{self._refused.detail}; not retried, so that the device does not lock the account "
                "(fix the credentials, then reconnect)",
            )

    def _refuse(self, exc: DeviceAuthError, method: str, path: str) -> None:
        self._refused = exc
        get_logger("camhub_hikvision.client").warning(
            "hikvision.credentials_refused", device=self.device_id, request=f"{method} {path}"
        )

    # -- request / response -------------------------------------------------------------------
    async def request(
        self, method: str, path: str, *, content: str | None = None, max_body: int | None = None
    ) -> Response:
        """One request; a 2xx answer is returned, anything else raised as a camhub error."""
        self._guard()
        try:
            response = await self.http.request(
                method,
                path,
                content=content.encode() if content is not None else None,
                headers=XML_HEADERS if content is not None else None,
                max_body=max_body,
            )
        except DeviceAuthError as exc:
            self._refuse(exc, method, path)
            raise
        if not 200 <= response.status < 300:
            raise status_error(
                self.device_id, response.status, self.status_of(response.body), f"{method} {path}"
            )
        return response

    async def get_xml(self, path: str, root: str) -> ET.Element:
        """``GET`` a document whose root element is ``root`` (any namespace)."""
        response = await self.request("GET", path)
        return expect_root(self.device_id, parse_xml(self.device_id, response.body), root, f"GET {path}")

    async def post_xml(self, path: str, body: str, root: str) -> ET.Element:
        """``POST`` an XML document and read the ``root`` document answered."""
        response = await self.request("POST", path, content=body)
        return expect_root(self.device_id, parse_xml(self.device_id, response.body), root, f"POST {path}")

    async def get_bytes(self, path: str, *, max_body: int) -> Response:
        """``GET`` a binary answer (a picture) of at most ``max_body`` bytes.

        A ``ResponseStatus`` in place of the data (some firmware answers 200) is raised like a refusal.
        """
        response = await self.request("GET", path, max_body=max_body)
        status = self.status_of(response.body)
        if status is not None:
            raise status_error(self.device_id, response.status, status, f"GET {path}")
        return response

    def status_of(self, body: bytes) -> IsapiStatus | None:
        """The ``ResponseStatus`` an answer carries, if it is one."""
        if not body.lstrip().startswith(b"<"):
            return None
        try:
            return response_status(parse_xml(self.device_id, body))
        except DeviceProtocolError:
            return None

    # -- streams ------------------------------------------------------------------------------
    @asynccontextmanager
    async def stream(self, path: str, *, read_timeout: float) -> AsyncIterator[httpx.Response]:
        """Open a long-lived ``GET`` (the alert stream); a refusal is raised like any other.

        ``read_timeout`` bounds each socket read; the caller bounds silence more tightly.
        """
        self._guard()
        http = DeviceHTTP(
            self.http.client, self.device_id, self.http.base_url, auth=self._auth, timeout=read_timeout
        )
        opened = False
        try:
            async with http.stream("GET", path, connect_timeout=self.timeout) as response:
                opened = True
                if not 200 <= response.status_code < 300:
                    body = await self._refusal_body(response)
                    status = self.status_of(body)
                    raise status_error(self.device_id, response.status_code, status, f"GET {path}")
                yield response
        except DeviceAuthError as exc:
            if not opened:  # a 401 while opening; a 403 lowPrivilege is not a credentials problem
                self._refuse(exc, "GET", path)
            raise

    async def _refusal_body(self, response: httpx.Response) -> bytes:
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                async for chunk in response.aiter_raw():
                    body.extend(chunk)
                    if len(body) >= _REFUSAL_LIMIT:
                        break
        except TimeoutError:
            pass  # explain the refusal with what arrived
        return bytes(body[:_REFUSAL_LIMIT])

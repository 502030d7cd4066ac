"""The lean ONVIF client: one device's SOAP calls, clock offset, authentication and service addresses.

No WSDL is loaded: each call is a small envelope template (:mod:`camhub_onvif.soap`) posted
through camhub's bounded :class:`~camhub.net.DeviceHTTP`, and each answer is read by local
name. Setting up a client for one more device costs a few objects, not a schema.

Authentication follows the device configuration: WS-Security UsernameToken (PasswordDigest,
``Created`` on the device's clock), HTTP Digest, or both. The device clock is measured first
with the unauthenticated ``GetSystemDateAndTime``, so a device whose clock is minutes off still
accepts the token. Credentials refused once are never sent again by this client: devices lock
accounts after a few failures, and a wrong password does not become right by repetition. One
exception, once per call: a WS-Security refusal that came after a slow exchange, or after which
the device clock turns out to have jumped, may be a token that was too old on arrival; the call
is sent once more with a fresh token, and a second refusal is final.

Service addresses come from ``GetServices`` (``GetCapabilities`` on older devices). Devices
behind NAT or port forwarding report their private address, so every returned address is
*rebased*: its scheme, host and port are replaced by the configured ones, keeping the path.
RTSP addresses are rebased to the configured host and ``rtsp_port``.
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx

from camhub.adapter import DeviceTime
from camhub.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceUnsupported
from camhub.log import get_logger
from camhub.net import DeviceHTTP, Response, child, children, text
from camhub.secrets import Secret
from camhub_onvif.soap import CONTENT_TYPE, NS, answer_of, envelope, username_token

__all__ = [
    "ChallengedAuth",
    "OnvifClient",
    "Services",
    "parse_capabilities",
    "parse_services",
    "parse_system_date_and_time",
    "rebase",
    "rebase_media",
]

#: Which service each ONVIF namespace is (as listed by ``GetServices``).
SERVICE_NAMESPACES = {
    NS["tds"]: "device",
    NS["trt"]: "media",
    NS["tr2"]: "media2",
    NS["tev"]: "events",
    NS["tse"]: "search",
    NS["trc"]: "recording",
    NS["trp"]: "replay",
}

#: A clock offset older than this is measured again before the next WS-Security token.
CLOCK_MAX_AGE = 3600.0
#: After a refused WS-Security token, a clock that moved more than this earns one more try.
CLOCK_JUMP = timedelta(seconds=2)
#: A WS-Security token refused by an exchange that took longer than this (seconds) may have
#: arrived older than the device allows (a congested link or a long wait for a connection):
#: it earns one more try with a fresh ``Created`` and nonce.
STALE_TOKEN_AFTER = 2.0
#: Longest time a device may hold back a long-poll answer (PullMessages ``Timeout``).
MAX_POLL = 30.0


class ChallengedAuth(httpx.Auth):
    """HTTP Digest, or Basic when that is the only scheme the device offers (older snapshot URLs).

    Credentials are sent only in answer to a challenge, and once: a refusal after that is the
    caller's :class:`~camhub.errors.DeviceAuthError`.
    """

    def __init__(self, username: str, password: Secret) -> None:
        self._digest = httpx.DigestAuth(username, password.reveal())
        self._basic = httpx.BasicAuth(username, password.reveal())

    def __repr__(self) -> str:
        return "<ChallengedAuth>"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._digest.auth_flow(request)
        response = yield next(flow)
        schemes = [h.split(" ", 1)[0].lower() for h in response.headers.get_list("www-authenticate")]
        if response.status_code == 401 and "digest" not in schemes and "basic" in schemes:
            yield next(self._basic.auth_flow(request))
            return
        try:
            yield flow.send(response)
        except StopIteration:
            return


@attrs.frozen
class Services:
    """Where a device's services answer (already rebased onto the configured address)."""

    device: str
    media: str | None = None
    media2: str | None = None
    events: str | None = None
    search: str | None = None
    recording: str | None = None
    replay: str | None = None


class OnvifClient:
    """SOAP calls to one ONVIF device.

    :param client: camhub's shared ``httpx.AsyncClient``.
    :param device_id: named in every error.
    :param base_url: ``http(s)://host:port`` as configured (never with credentials).
    :param device_path: path of the device service (``/onvif/device_service``).
    :param auth: ``ws-security``, ``digest`` or ``both``.
    :param timeout: seconds for one request, answer included.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        base_url: str,
        *,
        username: str,
        password: Secret,
        device_path: str = "/onvif/device_service",
        auth: str = "both",
        timeout: float = 10.0,
    ) -> None:
        self.device_id = device_id
        self.base_url = base_url.rstrip("/")
        self.device_url = self.base_url + "/" + device_path.lstrip("/")
        self.timeout = timeout
        self._username = username
        self._password = password
        self._wsse = auth in ("ws-security", "both")
        self._digest = auth in ("digest", "both")
        self._plain = DeviceHTTP(client, device_id, self.base_url, timeout=timeout)
        # httpx answers a Digest challenge once; a 401 after it raises DeviceAuthError.
        digest = httpx.DigestAuth(username, password.reveal())
        self._http = DeviceHTTP(
            client, device_id, self.base_url, auth=digest if self._digest else None, timeout=timeout
        )
        # A long poll is held back by the device on purpose: its read timeout is longer.
        self._poll_http = DeviceHTTP(
            client, device_id, self.base_url, auth=self._http.auth, timeout=timeout + MAX_POLL
        )
        # Snapshot URIs are plain HTTP resources, protected by HTTP auth whatever the SOAP auth is.
        media_auth = ChallengedAuth(username, password)
        self._media_http = DeviceHTTP(client, device_id, self.base_url, auth=media_auth, timeout=timeout)
        self._offset: timedelta | None = None
        self._measured_at = 0.0
        self._refused: str | None = None
        self._accepted = False
        self._media_refused = False
        self._services: Services | None = None

    def __repr__(self) -> str:
        return f"<OnvifClient device={self.device_id!r} url={self.device_url!r}>"

    @property
    def clock_offset(self) -> timedelta | None:
        """Device clock minus camhub's, as last measured (None before the first measurement)."""
        return self._offset

    # -- clock ------------------------------------------------------------------------------
    async def measure_clock(self, *, allow_credentials: bool = True) -> DeviceTime:
        """Ask the device its time (unauthenticated, as ONVIF allows) and keep the offset.

        :param allow_credentials: ask again with credentials when the device wants them even
            for its clock (some firmware does, against the standard).
        """
        sent = datetime.now(UTC)
        try:
            answer, _ = await self._send(
                self.device_url, "tds", "GetSystemDateAndTime", "", authenticate=False
            )
        except DeviceAuthError:
            if not allow_credentials:
                raise
            self._check_not_refused()
            try:
                answer, _ = await self._send(
                    self.device_url, "tds", "GetSystemDateAndTime", "", authenticate=True
                )
            except DeviceAuthError as exc:
                self._refuse("GetSystemDateAndTime", exc)
                raise
        received = datetime.now(UTC)
        device_time, zone = parse_system_date_and_time(self.device_id, answer)
        self._offset = device_time - (sent + (received - sent) / 2)
        self._measured_at = time.monotonic()
        get_logger(__name__).debug(
            "onvif.clock_measured", device=self.device_id, offset_s=round(self._offset.total_seconds(), 3)
        )
        return DeviceTime(device_time=device_time, offset=self._offset, timezone=zone)

    def _clock_stale(self) -> bool:
        return self._offset is None or time.monotonic() - self._measured_at > CLOCK_MAX_AGE

    # -- calls ------------------------------------------------------------------------------
    async def call(
        self,
        url: str,
        prefix: str,
        operation: str,
        inner: str = "",
        *,
        action: str | None = None,
        header: str = "",
        timeout: float | None = None,
        optional: bool = False,
    ) -> ET.Element:
        """Call ``prefix:operation`` with body content ``inner``; return the answer element.

        :param optional: a refusal of this call, once the credentials have been accepted for
            another, means the account lacks the right (ONVIF answers both with
            ``ter:NotAuthorized``): it is raised, but the credentials stay usable.
        """
        answer, _ = await self.call_with_body(
            url, prefix, operation, inner, action=action, header=header, timeout=timeout, optional=optional
        )
        return answer

    async def call_with_body(
        self,
        url: str,
        prefix: str,
        operation: str,
        inner: str = "",
        *,
        action: str | None = None,
        header: str = "",
        timeout: float | None = None,
        poll: float | None = None,
        optional: bool = False,
    ) -> tuple[ET.Element, bytes]:
        """:meth:`call`, also returning the raw answer (event payloads keep the device's text).

        :param poll: seconds the device may hold the answer back (``PullMessages``), on top
            of the usual timeout.
        """
        self._check_not_refused()
        if self._wsse and self._clock_stale():
            await self.measure_clock()
        send = functools.partial(
            self._send,
            url,
            prefix,
            operation,
            inner,
            action=action,
            header=header,
            timeout=timeout,
            poll=poll,
        )
        started = time.monotonic()
        try:
            answer = await send()
        except DeviceAuthError as exc:
            if optional and self._accepted:
                raise  # a right this account lacks; its credentials are fine
            slow = time.monotonic() - started > STALE_TOKEN_AFTER
            if not (self._wsse and (slow or await self._clock_moved())):
                self._refuse(operation, exc)
                raise
            get_logger(__name__).info(
                "onvif.token_retried", device=self.device_id, operation=operation, slow=slow
            )
            try:
                answer = await send()  # _send stamps a fresh Created and nonce
            except DeviceAuthError as again:
                self._refuse(operation, again)
                raise
        self._accepted = True
        return answer

    async def _clock_moved(self) -> bool:
        """After a refused token: did the device clock jump since it was measured? (Sends no credential.)"""
        before = self._offset
        try:
            await self.measure_clock(allow_credentials=False)
        except DeviceError:
            return False
        return before is not None and self._offset is not None and abs(self._offset - before) > CLOCK_JUMP

    def _check_not_refused(self) -> None:
        if self._refused is not None:
            raise DeviceAuthError(
                self.device_id, f"credentials were refused earlier ({self._refused}); they are not sent again"
            )

    def _refuse(self, operation: str, exc: DeviceAuthError) -> None:
        self._refused = operation
        get_logger(__name__).warning("onvif.credentials_refused", device=self.device_id, operation=operation)

    async def _send(
        self,
        url: str,
        prefix: str,
        operation: str,
        inner: str,
        *,
        authenticate: bool = True,
        action: str | None = None,
        header: str = "",
        timeout: float | None = None,
        poll: float | None = None,
    ) -> tuple[ET.Element, bytes]:
        action = action or f"{NS[prefix]}/{operation}"
        if authenticate and self._wsse:
            created = datetime.now(UTC) + (self._offset or timedelta(0))
            header = username_token(self._username, self._password.reveal(), created) + header
        element = (
            f"<{prefix}:{operation}>{inner}</{prefix}:{operation}>" if inner else f"<{prefix}:{operation}/>"
        )
        http = self._http if authenticate else self._plain
        if poll is not None:
            http = self._poll_http
            timeout = (timeout or self.timeout) + poll
        response = await http.request(
            "POST",
            url,
            content=envelope(element, header=header),
            headers={"Content-Type": f'{CONTENT_TYPE}; action="{action}"'},
            timeout=timeout,
        )
        return answer_of(self.device_id, operation, response.status, response.body), response.body

    async def fetch(self, url: str, *, max_body: int) -> Response:
        """GET a device resource (a snapshot) with HTTP auth; refused credentials are final.

        When the same credentials were accepted for SOAP, a refused snapshot URL (some devices
        check it against their web accounts, not their ONVIF ones) stops only further fetches.
        """
        self._check_not_refused()
        if self._media_refused:
            raise DeviceAuthError(
                self.device_id, "the snapshot URL refused the credentials earlier; not sent again"
            )
        try:
            return await self._media_http.request("GET", url, max_body=max_body)
        except DeviceAuthError as exc:
            if self._accepted:
                self._media_refused = True
                get_logger(__name__).warning("onvif.snapshot_credentials_refused", device=self.device_id)
            else:
                self._refuse("GET", exc)
            raise

    # -- services ---------------------------------------------------------------------------
    async def services(self) -> Services:
        """The device's service addresses (``GetServices``, else ``GetCapabilities``), cached."""
        if self._services is None:
            found: dict[str, str] = {}
            try:
                answer = await self.call(
                    self.device_url,
                    "tds",
                    "GetServices",
                    "<tds:IncludeCapability>false</tds:IncludeCapability>",
                )
                found = parse_services(answer)
            except (DeviceUnsupported, DeviceProtocolError) as exc:
                get_logger(__name__).info("onvif.getservices_failed", device=self.device_id, error=exc.detail)
            if not found.keys() & {"media", "media2"}:
                answer = await self.call(
                    self.device_url, "tds", "GetCapabilities", "<tds:Category>All</tds:Category>"
                )
                found = {**parse_capabilities(answer), **found}
            rebased = {name: rebase(url, self.base_url) for name, url in found.items() if name != "device"}
            self._services = Services(device=self.device_url, **rebased)
        return self._services


# -- parsing (pure: tests feed captures straight in) ------------------------------------------
def parse_system_date_and_time(device_id: str, answer: ET.Element) -> tuple[datetime, str]:
    """The device's UTC time and its time zone string from a ``GetSystemDateAndTime`` answer.

    Reads ``UTCDateTime``; a device that only reports ``LocalDateTime`` is converted with its
    POSIX ``TZ`` string (``CST-7:00:00`` is UTC+7).
    """
    info = child(answer, "SystemDateAndTime")
    zone = text(info, "TimeZone", "TZ")
    stamp = child(info, "UTCDateTime")
    correction = timedelta(0)
    if stamp is None:
        stamp = child(info, "LocalDateTime")
        correction = _posix_tz_offset(zone)
    try:
        moment = datetime(
            int(text(stamp, "Date", "Year")),
            int(text(stamp, "Date", "Month")),
            int(text(stamp, "Date", "Day")),
            int(text(stamp, "Time", "Hour")),
            int(text(stamp, "Time", "Minute")),
            int(text(stamp, "Time", "Second")),
            tzinfo=UTC,
        )
    except ValueError:
        raise DeviceProtocolError(
            device_id, "GetSystemDateAndTime: no valid UTCDateTime in the answer"
        ) from None
    return moment + correction, zone


def _posix_tz_offset(zone: str) -> timedelta:
    """What to add to local time to get UTC for a POSIX TZ string (``CST-7:00:00`` → -7 h)."""
    index = 0
    while index < len(zone) and (zone[index].isalpha() or zone[index] in "<>"):
        index += 1
    rest = zone[index:]
    sign = -1 if rest.startswith("-") else 1
    digits = rest.lstrip("+-").split(",")[0]
    fields = [f for f in digits.split(":") if f.isdigit()][:3]
    if not fields:
        return timedelta(0)
    hours, minutes, seconds = ([int(f) for f in fields] + [0, 0])[:3]
    return sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_services(answer: ET.Element) -> dict[str, str]:
    """Service name → XAddr (as the device reports it) from a ``GetServices`` answer."""
    found: dict[str, str] = {}
    for service in children(answer, "Service"):
        name = SERVICE_NAMESPACES.get(text(service, "Namespace"))
        address = text(service, "XAddr")
        if name and address:
            found.setdefault(name, address)
    return found


def parse_capabilities(answer: ET.Element) -> dict[str, str]:
    """Service name → XAddr from a ``GetCapabilities`` answer (no Media2 there)."""
    caps = child(answer, "Capabilities")
    found: dict[str, str] = {}
    for name, path in (
        ("device", ("Device",)),
        ("media", ("Media",)),
        ("events", ("Events",)),
        ("search", ("Extension", "Search")),
        ("recording", ("Extension", "Recording")),
        ("replay", ("Extension", "Replay")),
    ):
        address = text(caps, *path, "XAddr")
        if address:
            found[name] = address
    return found


def rebase(url: str, base_url: str) -> str:
    """``url`` with the scheme, host and port of ``base_url`` (devices behind NAT report private ones).

    Keeps the path and query; drops any userinfo. A relative reference is joined to ``base_url``.
    """
    first = next(iter(url.split()), "")
    parts = urlsplit(first)
    base = urlsplit(base_url)
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def rebase_media(url: str, base_url: str, host: str, rtsp_port: int) -> str:
    """A stream or snapshot URI rebased: RTSP onto ``host:rtsp_port``, HTTP onto ``base_url``.

    Credentials some devices put in the URI are removed; camhub keeps them apart.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in ("rtsp", "rtsps", "rtspu"):
        shown = f"[{host}]" if ":" in host else host
        return urlunsplit((parts.scheme.lower(), f"{shown}:{rtsp_port}", parts.path or "/", parts.query, ""))
    return rebase(url, base_url)

"""A simulated ONVIF device (Profile S/T/G) on loopback: SOAP 1.2, WS-Security, pull points, WS-Discovery.

:class:`OnvifSimulator` answers the device, Media1, Media2, events, search, recording and replay
services on one HTTP port, in the shapes real devices use (the agsh/onvif and go2rtc peer
captures in ``camhub/testing/captures/onvif``), and can serve those captures verbatim.

Authentication is what the device is configured for: WS-Security UsernameToken (PasswordDigest
or PasswordText, ``Created`` within a few seconds of the device's own clock, which
``profile.clock_skew`` moves, and ending in ``Z``; a nonce is accepted once), HTTP Digest, or
both. ``GetSystemDateAndTime`` is public, as ONVIF requires, so clients can measure the offset.
Failures answer the SOAP fault ``env:Sender/ter:NotAuthorized`` (HTTP 400) and count in
``failed_logins``; unknown or disabled operations answer ``env:Receiver/ter:ActionNotSupported``.

Events emitted with :meth:`~camhub.testing.simulator.SimulatedDevice.emit` reach every
pull-point subscription as ONVIF notifications (motion as ``RuleEngine/CellMotionDetector/Motion``,
video loss as ``VideoSource/SignalLoss``, tamper as ``VideoSource/GlobalSceneChange``, storage
faults as ``Device/HardwareFailure/StorageFailure``). Recordings in ``self.recordings`` are one
ONVIF recording per channel for the search service. :meth:`start_discovery` answers
WS-Discovery probes sent to a UDP port on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.resources
import itertools
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast
from urllib.parse import quote
from xml.sax.saxutils import escape

import attrs
from aiohttp import web

from camhub.adapter import EventKind
from camhub.errors import DeviceError
from camhub.net import child, local_name, parse_xml, text
from camhub.testing.simulator import DeviceProfile, SimulatedDevice, SimulatedEvent, SimulatedRecording

__all__ = ["AGSH_CAPTURES", "DAHUA_CAPTURES", "OnvifSimulator", "load_capture"]

#: Operation → capture file: the agsh/onvif mock's Profile S answers (its GetSnapshotUri is malformed).
AGSH_CAPTURES: Mapping[str, str] = {
    "GetSystemDateAndTime": "agsh_GetSystemDateAndTime.xml",
    "GetDeviceInformation": "agsh_GetDeviceInformation.xml",
    "GetCapabilities": "agsh_GetCapabilities.xml",
    "GetServices": "agsh_GetServices.xml",
    "GetProfiles": "agsh_GetProfiles.xml",
    "GetStreamUri": "agsh_GetStreamUri.xml",
    "GetSnapshotUri": "agsh_GetSnapshotUri.xml",
    "Probe": "agsh_Probe.xml",
}
#: Operation → capture file: a real Dahua camera's answers, recorded by go2rtc.
DAHUA_CAPTURES: Mapping[str, str] = {
    "GetCapabilities": "dahua_GetCapabilities_go2rtc.xml",
    "GetStreamUri": "dahua_GetStreamUri_go2rtc.xml",
    "GetSnapshotUri": "dahua_GetSnapshotUri_go2rtc.xml",
}


def load_capture(name: str) -> bytes:
    """A peer capture from ``camhub/testing/captures/onvif`` (see its MANIFEST), as bytes."""
    return (importlib.resources.files("camhub.testing") / "captures" / "onvif" / name).read_bytes()


_NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "tns1": "http://www.onvif.org/ver10/topics",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsrf-r": "http://docs.oasis-open.org/wsrf/r-2",
    "sim": "urn:camhub:simulator",
}
_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
    + " ".join(f'xmlns:{p}="{u}"' for p, u in _NS.items() if p != "s")
    + ' xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope">'
)
_CONTENT_TYPE = "application/soap+xml; charset=utf-8"
_SERVICE_PATHS = {
    "device": "/onvif/device_service",
    "media": "/onvif/media_service",
    "media2": "/onvif/media2_service",
    "events": "/onvif/event_service",
    "search": "/onvif/search_service",
    "recording": "/onvif/recording_service",
    "replay": "/onvif/replay_service",
}
_SERVICE_OF_NAMESPACE = {
    _NS["tds"]: "device",
    _NS["trt"]: "media",
    _NS["tr2"]: "media2",
    _NS["tev"]: "events",
    _NS["wsnt"]: "events",
    _NS["tse"]: "search",
    _NS["trc"]: "recording",
    _NS["trp"]: "replay",
}
_SERVICE_NAMESPACES = {
    "device": _NS["tds"],
    "media": _NS["trt"],
    "media2": _NS["tr2"],
    "events": _NS["tev"],
    "search": _NS["tse"],
    "recording": _NS["trc"],
    "replay": _NS["trp"],
}
_TOPIC_DIALECT = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
# A 16×16 grey JPEG (made with PyAV's mjpeg encoder).
JPEG = base64.b64decode(
    "/9j//gAQTGF2YzYyLjI4LjEwMgD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgHBwcGBgcHCAgICAkJCQgI"
    "CAgJCQoKCgwMCwsODg4RERT/xABKAAEAAAAAAAAAAAAAAAAAAAAAAQEAAAAAAAAAAAAAAAAAAAAAEAEAAAAAAAAAAAAAAAAA"
    "AAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgAEAAQAwEiAAIRAAMRAP/aAAwDAQACEQMRAD8AAA//2Q=="
)


@attrs.frozen
class _Soap:
    """A parsed SOAP request (the middleware reads it before authentication decides)."""

    root: ET.Element | None
    element: ET.Element | None = None
    namespace: str = ""
    operation: str = ""
    error: str = ""


_SOAP_KEY = web.RequestKey("camhub_onvif_soap", _Soap)


class _Fault(Exception):
    def __init__(self, status: int, code: str, subcodes: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.subcodes, self.reason = status, code, subcodes, reason


def _not_authorized(reason: str) -> _Fault:
    return _Fault(400, "SOAP-ENV:Sender", ("ter:NotAuthorized",), reason)


def _unsupported(operation: str) -> _Fault:
    return _Fault(500, "SOAP-ENV:Receiver", ("ter:ActionNotSupported",), f"{operation} is not supported")


def _invalid(subcode: str, reason: str) -> _Fault:
    return _Fault(400, "SOAP-ENV:Sender", ("ter:InvalidArgVal", subcode), reason)


@attrs.define
class _PullPoint:
    id: str
    queue: asyncio.Queue[SimulatedEvent]
    termination: datetime
    task: asyncio.Task[None] | None = None


Operation = Callable[[web.Request, ET.Element], Awaitable[str]]


class _Events(Protocol):
    """What :meth:`SimulatedDevice.subscribe` returns: events until closed."""

    def __aiter__(self) -> AsyncIterator[SimulatedEvent]: ...

    async def aclose(self) -> None: ...


class OnvifSimulator(SimulatedDevice):
    """A simulated ONVIF camera or NVR.

    :param auth: ``ws-security``, ``digest`` or ``both`` (what the device requires of SOAP calls;
        snapshots are always behind HTTP Digest, as on real devices).
    :param media2: offer the Media2 service (H.265-capable) beside Media1.
    :param profile_g: offer the search, recording and replay services.
    :param unsupported: operations answered with ``ter:ActionNotSupported`` (older firmware).
    :param forbidden: operations this account lacks the right to: answered with
        ``ter:NotAuthorized`` (as ONVIF answers both wrong credentials and missing rights), not
        counted as failed logins.
    :param snapshot_auth: ``digest`` or ``basic`` (older snapshot URLs only know Basic).
    :param web_password: the password Basic snapshot URLs check, when the device keeps its web
        accounts apart from its ONVIF ones (default: the profile's).
    :param captures: operation → capture file served verbatim instead of the simulated answer
        (:data:`AGSH_CAPTURES`, :data:`DAHUA_CAPTURES`, or any mix, including
        ``CreatePullPointSubscription`` and ``PullMessages`` for the broken-camera captures).
        A captured ``GetSystemDateAndTime`` sets the device clock to the captured time.
    :param advertise: ``http://host[:port]`` the device puts in the addresses it returns
        instead of its own (a device behind NAT); clients must rebase them.
    :param wsse_window: how far a token's ``Created`` may be from the device clock.
    :param credentials_in_uris: put ``user:password@`` into stream URIs, as some devices do.
    :param reference_parameters: route subscriptions by a ``SubscriptionId`` reference
        parameter on the shared event service address (as Axis devices do).
    :param search_page: recordings returned per ``GetRecordingSearchResults`` round.
    :param relative_renew: accept a relative ``TerminationTime`` (``PT60S``) in ``Renew``; some
        firmware takes only absolute times.
    """

    vendor = "onvif"

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        rtsp_url: str = "rtsp://127.0.0.1:554",
        port: int = 0,
        auth: str = "both",
        media2: bool = True,
        profile_g: bool = True,
        unsupported: Iterable[str] = (),
        forbidden: Iterable[str] = (),
        snapshot_auth: str = "digest",
        web_password: str | None = None,
        captures: Mapping[str, str] | None = None,
        advertise: str | None = None,
        wsse_window: timedelta = timedelta(seconds=5),
        credentials_in_uris: bool = False,
        reference_parameters: bool = False,
        search_page: int = 1,
        relative_renew: bool = True,
    ) -> None:
        if auth not in ("ws-security", "digest", "both"):
            raise ValueError(f"auth must be ws-security, digest or both, not {auth!r}")
        self.auth = auth
        self.media2 = media2
        self.profile_g = profile_g
        self.unsupported = set(unsupported)
        self.forbidden = set(forbidden)
        self.snapshot_auth = snapshot_auth
        self.web_password = web_password
        #: Operation → answer bytes served verbatim (change it while the device runs).
        self.captures: dict[str, bytes] = {op: load_capture(name) for op, name in (captures or {}).items()}
        self.advertise = advertise.rstrip("/") if advertise else None
        self.wsse_window = wsse_window
        self.credentials_in_uris = credentials_in_uris
        self.reference_parameters = reference_parameters
        self.search_page = max(1, search_page)
        self.relative_renew = relative_renew
        #: Renew and Unsubscribe requests answered (for tests).
        self.renewals = 0
        self.unsubscribes = 0
        self.pull_points: dict[str, _PullPoint] = {}
        self._clock_shift = _captured_clock_shift(self.captures.get("GetSystemDateAndTime"))
        self._seen_nonces: dict[str, datetime] = {}
        self._searches: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._discovery: asyncio.DatagramTransport | None = None
        self._operations: dict[tuple[str, str], Operation] = {}
        super().__init__(profile, rtsp_url=rtsp_url, port=port)
        self._operations = self._operation_table()

    # -- lifecycle ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """Close pull points and the discovery responder, then stop listening."""
        for pull_point in list(self.pull_points.values()):
            self._drop(pull_point)
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        await super().stop()

    def now(self) -> datetime:
        return super().now() + self._clock_shift

    @property
    def advertised(self) -> str:
        """The base URL the device puts in the addresses it returns."""
        return self.advertise or self.url

    def service_url(self, service: str) -> str:
        """Where a service answers (as advertised): ``device``, ``media``, ``events``, …"""
        return self.advertised + _SERVICE_PATHS[service]

    def replay_path(self, channel: int) -> str:
        """The media server path replaying a channel's recording (``GetReplayUri``)."""
        return f"/{self.vendor}/{self.port}/ch{channel}/replay"

    # -- routes ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/onvif/{service:.*}", self._soap)
        for path in ("/onvif/snapshot", "/onvifsnapshot/media_service/snapshot", "/onvif-cgi/jpg/image.cgi"):
            app.router.add_get(path, self._snapshot)
        # The SOAP body is read before authentication: GetSystemDateAndTime is public.
        auth_index = next(
            (i for i, m in enumerate(app.middlewares) if getattr(m, "__name__", "") == "_auth_middleware"), 0
        )
        app.middlewares.insert(auth_index, self._soap_middleware)

    @web.middleware
    async def _soap_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST" and request.path.startswith("/onvif/"):
            request[_SOAP_KEY] = _parse_soap(await request.read())
        return await handler(request)

    def is_public(self, request: web.Request) -> bool:
        soap = request.get(_SOAP_KEY)
        if soap is None:
            # Snapshots: HTTP auth whatever the SOAP authentication is (Basic is checked by the handler).
            return self.snapshot_auth == "basic" and request.method == "GET"
        return soap.operation == "GetSystemDateAndTime" or self.auth == "ws-security"

    async def _soap(self, request: web.Request) -> web.StreamResponse:
        soap = request[_SOAP_KEY]
        try:
            if soap.root is None or soap.element is None:
                raise _Fault(400, "SOAP-ENV:Sender", ("ter:WellFormed",), soap.error or "not a SOAP request")
            if soap.operation != "GetSystemDateAndTime" and self.auth in ("ws-security", "both"):
                self._check_wsse(soap.root)
            if soap.operation in self.forbidden:
                raise _not_authorized(f"the account may not call {soap.operation}")
            self._check_route(request, soap)
            operation = self._operations.get((soap.namespace, soap.operation))
            if soap.operation in self.captures:
                return await self._captured(request, soap, operation)
            if operation is None or soap.operation in self.unsupported:
                raise _unsupported(soap.operation)
            answer = await operation(request, soap.element)
        except _Fault as fault:
            return self._fault_response(fault)
        return _soap_response(answer)

    async def _captured(self, request: web.Request, soap: _Soap, operation: Operation | None) -> web.Response:
        """The captured answer; subscriptions still change state (a device that answers them badly)."""
        assert soap.element is not None
        if (
            soap.operation in ("CreatePullPointSubscription", "Renew", "Unsubscribe")
            and operation is not None
        ):
            with contextlib.suppress(_Fault):
                await operation(request, soap.element)
        elif soap.operation == "PullMessages":
            wait = _termination(text(soap.element, "Timeout"), self.now())
            await asyncio.sleep(min(1.0, max(0.0, (wait - self.now()).total_seconds())) if wait else 1.0)
        return web.Response(body=self.captures[soap.operation], content_type="application/soap+xml")

    def _check_route(self, request: web.Request, soap: _Soap) -> None:
        service = _SERVICE_OF_NAMESPACE.get(soap.namespace)
        if service is None or not self._offers(service):
            raise _unsupported(soap.operation)
        path = request.path
        if path.startswith("/onvif/subscription/"):
            if soap.operation not in ("PullMessages", "Renew", "Unsubscribe"):
                raise _unsupported(soap.operation)
        elif path in _SERVICE_PATHS.values() and path != _SERVICE_PATHS[service]:
            raise _unsupported(soap.operation)  # a real device routes services by path

    def _offers(self, service: str) -> bool:
        if service == "media2":
            return self.media2
        if service in ("search", "recording", "replay"):
            return self.profile_g
        return True

    def _fault_response(self, fault: _Fault) -> web.Response:
        subcodes = "".join(f"<SOAP-ENV:Subcode><SOAP-ENV:Value>{s}</SOAP-ENV:Value>" for s in fault.subcodes)
        closing = "</SOAP-ENV:Subcode>" * len(fault.subcodes)
        body = (
            f"<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>{fault.code}</SOAP-ENV:Value>{subcodes}{closing}"
            f'</SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">{escape(fault.reason)}</SOAP-ENV:Text>'
            "</SOAP-ENV:Reason></SOAP-ENV:Fault>"
        )
        return _soap_response(body, status=fault.status)

    # -- WS-Security ---------------------------------------------------------------------------
    def _check_wsse(self, root: ET.Element) -> None:
        if self.locked():
            raise _not_authorized("account locked")
        token = child(root, "Header", "Security", "UsernameToken")
        if token is None:
            raise _not_authorized("a WS-Security UsernameToken is required")
        if not self._token_valid(token):
            self.failed_logins += 1
            raise _not_authorized("Sender not Authorized")

    def _token_valid(self, token: ET.Element) -> bool:
        username = text(token, "Username")
        password = child(token, "Password")
        created = text(token, "Created")
        nonce_text = text(token, "Nonce")
        moment = _parse_time(created)
        # Devices want UTC written with Z; "+00:00" or local times are refused (seen on Hikvision).
        if password is None or moment is None or not created.endswith("Z"):
            return False
        if abs(moment - self.now()) > self.wsse_window:
            return False
        if nonce_text in self._seen_nonces:
            return False  # a replayed token
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
        except ValueError:
            return False
        given = (password.text or "").strip()
        if password.get("Type", "").endswith("#PasswordText"):
            expected = self.profile.password
        else:
            digest = hashlib.sha1(
                nonce + created.encode() + self.profile.password.encode(), usedforsecurity=True
            )
            expected = base64.b64encode(digest.digest()).decode()
        if not (
            secrets.compare_digest(username, self.profile.username)
            and secrets.compare_digest(given, expected)
        ):
            return False
        self._remember_nonce(nonce_text)
        return True

    def _remember_nonce(self, nonce: str) -> None:
        now = self.now()
        self._seen_nonces[nonce] = now
        if len(self._seen_nonces) > 10_000:
            horizon = now - 2 * self.wsse_window
            self._seen_nonces = {n: t for n, t in self._seen_nonces.items() if t > horizon}

    # -- operations ----------------------------------------------------------------------------
    def _operation_table(self) -> dict[tuple[str, str], Operation]:
        tds, trt, tr2, tev, wsnt = _NS["tds"], _NS["trt"], _NS["tr2"], _NS["tev"], _NS["wsnt"]
        tse, trc, trp = _NS["tse"], _NS["trc"], _NS["trp"]
        return {
            (tds, "GetSystemDateAndTime"): self._get_system_date_and_time,
            (tds, "GetDeviceInformation"): self._get_device_information,
            (tds, "GetNetworkInterfaces"): self._get_network_interfaces,
            (tds, "GetScopes"): self._get_scopes,
            (tds, "GetServices"): self._get_services,
            (tds, "GetCapabilities"): self._get_capabilities,
            (tds, "GetStorageConfigurations"): self._get_storage_configurations,
            (trt, "GetProfiles"): self._get_profiles_media1,
            (trt, "GetStreamUri"): self._get_stream_uri,
            (trt, "GetSnapshotUri"): self._get_snapshot_uri,
            (tr2, "GetProfiles"): self._get_profiles_media2,
            (tr2, "GetStreamUri"): self._get_stream_uri,
            (tr2, "GetSnapshotUri"): self._get_snapshot_uri,
            (tev, "CreatePullPointSubscription"): self._create_pull_point,
            (tev, "PullMessages"): self._pull_messages,
            (wsnt, "Renew"): self._renew,
            (wsnt, "Unsubscribe"): self._unsubscribe,
            (tse, "FindRecordings"): self._find_recordings,
            (tse, "GetRecordingSearchResults"): self._get_recording_search_results,
            (tse, "EndSearch"): self._end_search,
            (tse, "GetRecordingSummary"): self._get_recording_summary,
            (tse, "GetRecordingInformation"): self._get_recording_information,
            (trc, "GetRecordings"): self._get_recordings,
            (trp, "GetReplayUri"): self._get_replay_uri,
        }

    # device service
    async def _get_system_date_and_time(self, request: web.Request, body: ET.Element) -> str:
        now = self.now()
        local = now + timedelta(hours=7)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>CST-7:00:00</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime>{_date_time(now)}</tt:UTCDateTime>"
            f"<tt:LocalDateTime>{_date_time(local)}</tt:LocalDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    async def _get_device_information(self, request: web.Request, body: ET.Element) -> str:
        p = self.profile
        return (
            "<tds:GetDeviceInformationResponse>"
            "<tds:Manufacturer>camhub</tds:Manufacturer>"
            f"<tds:Model>{escape(p.model)}</tds:Model><tds:FirmwareVersion>{escape(p.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(p.serial)}</tds:SerialNumber><tds:HardwareId>{escape(p.model)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    async def _get_network_interfaces(self, request: web.Request, body: ET.Element) -> str:
        return (
            '<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
            "<tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name>"
            f"<tt:HwAddress>{escape(self.profile.mac)}</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>"
            "<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>127.0.0.1</tt:Address>"
            "<tt:PrefixLength>8</tt:PrefixLength></tt:Manual><tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
            "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
        )

    def scopes(self) -> list[str]:
        """The device's WS-Discovery / GetScopes scopes."""
        kind = "NetworkVideoRecorder" if self.profile.nvr else "NetworkVideoTransmitter"
        found = [
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/Profile/T",
            f"onvif://www.onvif.org/type/{kind}",
            f"onvif://www.onvif.org/name/{quote(self.profile.name, safe='')}",
            f"onvif://www.onvif.org/hardware/{quote(self.profile.model, safe='')}",
            "onvif://www.onvif.org/location/country/vietnam",
        ]
        if self.profile_g:
            found.append("onvif://www.onvif.org/Profile/G")
        return found

    async def _get_scopes(self, request: web.Request, body: ET.Element) -> str:
        items = "".join(
            f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(s)}</tt:ScopeItem></tds:Scopes>"
            for s in self.scopes()
        )
        return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"

    async def _get_services(self, request: web.Request, body: ET.Element) -> str:
        services = "".join(
            f"<tds:Service><tds:Namespace>{_SERVICE_NAMESPACES[name]}</tds:Namespace>"
            f"<tds:XAddr>{escape(self.service_url(name))}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
            for name in _SERVICE_PATHS
            if self._offers(name)
        )
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    async def _get_capabilities(self, request: web.Request, body: ET.Element) -> str:
        extension = ""
        if self.profile_g:
            extension = "".join(
                f"<tt:{tag}><tt:XAddr>{escape(self.service_url(name))}</tt:XAddr></tt:{tag}>"
                for tag, name in (("Recording", "recording"), ("Search", "search"), ("Replay", "replay"))
            )
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{escape(self.service_url('device'))}</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{escape(self.service_url('events'))}</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false</tt:WSPausableSubscriptionManagerInterfaceSupport>"
            "</tt:Events>"
            f"<tt:Media><tt:XAddr>{escape(self.service_url('media'))}</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
            f"<tt:Extension>{extension}</tt:Extension>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    async def _get_storage_configurations(self, request: web.Request, body: ET.Element) -> str:
        # The NAS entry carries a password, as real answers do: clients must never show it.
        return (
            "<tds:GetStorageConfigurationsResponse>"
            '<tds:StorageConfigurations token="SD_1"><tds:Data type="LocalStorage">'
            "<tds:LocalPath>/mnt/sd1</tds:LocalPath></tds:Data></tds:StorageConfigurations>"
            '<tds:StorageConfigurations token="NAS_1"><tds:Data type="CIFS">'
            "<tds:StorageUri>//192.0.2.5/recordings</tds:StorageUri>"
            "<tds:User><tds:UserName>recorder</tds:UserName><tds:Password>nas-secret-5</tds:Password></tds:User>"
            "</tds:Data></tds:StorageConfigurations>"
            "</tds:GetStorageConfigurationsResponse>"
        )

    # media
    def _profile_tokens(self) -> list[tuple[str, int, bool]]:
        """(token, channel, main) of every profile, in the device's order."""
        return [
            (f"Profile_{c}_{1 if main else 2}", c, main) for c in self._channels() for main in (True, False)
        ]

    def _channels(self) -> range:
        return range(1, self.profile.channels + 1)

    def _profile_of(self, body: ET.Element) -> tuple[int, bool]:
        token = text(body, "ProfileToken")
        for candidate, channel, main in self._profile_tokens():
            if candidate == token:
                return channel, main
        raise _invalid("ter:NoProfile", f"no profile {token!r}")

    async def _get_profiles_media1(self, request: web.Request, body: ET.Element) -> str:
        profiles = []
        for token, channel, main in self._profile_tokens():
            width, height = (1920, 1080) if main else (640, 360)
            audio = self.profile.audio and main
            profiles.append(
                f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{"MainStream" if main else "SubStream"}</tt:Name>'
                f"{_video_source('tt:VideoSourceConfiguration', channel)}"
                + (_audio_source("tt:AudioSourceConfiguration", channel) if audio else "")
                + f'<tt:VideoEncoderConfiguration token="VideoEncoder_{channel}_{1 if main else 2}">'
                f"<tt:Name>VideoEncoder_{channel}</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
                f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution>"
                "<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
                "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>"
                "<tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
                "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
                "<tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
                "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
                + (
                    f'<tt:AudioEncoderConfiguration token="AudioEncoder_{channel}">'
                    f"<tt:Name>AudioEncoder_{channel}</tt:Name>"
                    "<tt:UseCount>1</tt:UseCount><tt:Encoding>G711</tt:Encoding><tt:Bitrate>64</tt:Bitrate>"
                    "<tt:SampleRate>8</tt:SampleRate><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
                    "</tt:AudioEncoderConfiguration>"
                    if audio
                    else ""
                )
                + "</trt:Profiles>"
            )
        return f"<trt:GetProfilesResponse>{''.join(profiles)}</trt:GetProfilesResponse>"

    async def _get_profiles_media2(self, request: web.Request, body: ET.Element) -> str:
        profiles = []
        for token, channel, main in self._profile_tokens():
            width, height = (1920, 1080) if main else (640, 360)
            audio = self.profile.audio and main
            profiles.append(
                f'<tr2:Profiles token="{token}" fixed="true">'
                f"<tr2:Name>{'MainStream' if main else 'SubStream'}</tr2:Name>"
                f"<tr2:Configurations>{_video_source('tr2:VideoSource', channel)}"
                + (_audio_source("tr2:AudioSource", channel) if audio else "")
                + f'<tr2:VideoEncoder token="VideoEncoder_{channel}_{1 if main else 2}" GovLength="50" Profile="Main">'
                f"<tt:Name>VideoEncoder_{channel}</tt:Name><tt:UseCount>1</tt:UseCount>"
                f"<tt:Encoding>{'H265' if main else 'H264'}</tt:Encoding>"
                f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution>"
                '<tt:RateControl ConstantBitRate="false"><tt:FrameRateLimit>25</tt:FrameRateLimit>'
                "<tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl><tt:Quality>5</tt:Quality></tr2:VideoEncoder>"
                + (
                    f'<tr2:AudioEncoder token="AudioEncoder_{channel}"><tt:Name>AudioEncoder_{channel}</tt:Name>'
                    "<tt:UseCount>1</tt:UseCount><tt:Encoding>PCMU</tt:Encoding><tt:Bitrate>64</tt:Bitrate>"
                    "<tt:SampleRate>8</tt:SampleRate></tr2:AudioEncoder>"
                    if audio
                    else ""
                )
                + "</tr2:Configurations></tr2:Profiles>"
            )
        return f"<tr2:GetProfilesResponse>{''.join(profiles)}</tr2:GetProfilesResponse>"

    def _with_credentials(self, url: str) -> str:
        if self.credentials_in_uris:
            scheme, rest = url.split("://", 1)
            userinfo = f"{quote(self.profile.username, safe='')}:{quote(self.profile.password, safe='')}"
            url = f"{scheme}://{userinfo}@{rest}"
        return url

    async def _get_stream_uri(self, request: web.Request, body: ET.Element) -> str:
        channel, main = self._profile_of(body)
        uri = escape(self._with_credentials(self.stream_url(channel, main)))
        if body.tag.startswith("{" + _NS["tr2"]):
            return f"<tr2:GetStreamUriResponse><tr2:Uri>{uri}</tr2:Uri></tr2:GetStreamUriResponse>"
        return (
            f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{uri}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
        )

    async def _get_snapshot_uri(self, request: web.Request, body: ET.Element) -> str:
        channel, main = self._profile_of(body)
        uri = escape(f"{self.advertised}/onvif/snapshot?channel={channel}&profile={1 if main else 2}")
        if body.tag.startswith("{" + _NS["tr2"]):
            return f"<tr2:GetSnapshotUriResponse><tr2:Uri>{uri}</tr2:Uri></tr2:GetSnapshotUriResponse>"
        return (
            f"<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>{uri}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>"
        )

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if self.snapshot_auth == "basic" and not self._basic_ok(request.headers.get("Authorization", "")):
            return web.Response(
                status=401, headers={"WWW-Authenticate": f'Basic realm="{self.profile.realm}"'}
            )
        channel = request.query.get("channel", request.query.get("camera", "1"))
        if not channel.isdigit() or int(channel) not in self._channels():
            return web.Response(status=404, text="no such channel")
        return web.Response(body=JPEG, content_type="image/jpeg")

    def _basic_ok(self, header: str) -> bool:
        if not header.lower().startswith("basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode()
        except ValueError:
            given = ""
        expected = f"{self.profile.username}:{self.web_password or self.profile.password}"
        if secrets.compare_digest(given.encode(), expected.encode()):
            return True
        self.failed_logins += 1
        return False

    # events
    async def _create_pull_point(self, request: web.Request, body: ET.Element) -> str:
        lifetime = _termination(text(body, "InitialTerminationTime"), self.now()) or self.now() + timedelta(
            seconds=60
        )
        pull_point = _PullPoint(id=str(next(self._ids)), queue=asyncio.Queue(), termination=lifetime)
        self.pull_points[pull_point.id] = pull_point
        # Subscribed now, before the answer: an event emitted right after it is not lost.
        pull_point.task = asyncio.get_running_loop().create_task(self._feed(pull_point, self.subscribe()))
        if self.reference_parameters:
            address = self.service_url("events")
            parameters = (
                f"<wsa:ReferenceParameters><sim:SubscriptionId>{pull_point.id}</sim:SubscriptionId>"
                "</wsa:ReferenceParameters>"
            )
        else:
            address, parameters = f"{self.advertised}/onvif/subscription/{pull_point.id}", ""
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{escape(address)}</wsa:Address>{parameters}</tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{_time(self.now())}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{_time(pull_point.termination)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    async def _feed(self, pull_point: _PullPoint, subscription: _Events) -> None:
        try:
            async for event in subscription:
                pull_point.queue.put_nowait(event)
        finally:
            await subscription.aclose()

    def _pull_point_of(self, request: web.Request) -> _PullPoint:
        soap = request[_SOAP_KEY]
        wanted = request.path.rsplit("/", 1)[-1] if request.path.startswith("/onvif/subscription/") else ""
        if not wanted and soap.root is not None:
            wanted = text(soap.root, "Header", "SubscriptionId")
        if not wanted and self.pull_points:
            wanted = next(reversed(self.pull_points))  # a camera with a single pull point
        pull_point = self.pull_points.get(wanted)
        if pull_point is not None and pull_point.termination < self.now():
            self._drop(pull_point)
            pull_point = None
        if pull_point is None:
            raise _Fault(400, "SOAP-ENV:Sender", ("wsrf-r:ResourceUnknownFault",), "no such subscription")
        return pull_point

    def _drop(self, pull_point: _PullPoint) -> None:
        self.pull_points.pop(pull_point.id, None)
        if pull_point.task is not None:
            pull_point.task.cancel()

    async def _pull_messages(self, request: web.Request, body: ET.Element) -> str:
        pull_point = self._pull_point_of(request)
        if "Renew" in self.unsupported:  # such devices keep a subscription alive while it is polled
            pull_point.termination = max(pull_point.termination, self.now() + timedelta(seconds=60))
        wait = _termination(text(body, "Timeout"), self.now())
        seconds = min(30.0, max(0.0, (wait - self.now()).total_seconds())) if wait else 5.0
        limit_text = text(body, "MessageLimit")
        limit = int(limit_text) if limit_text.isdigit() and int(limit_text) > 0 else 100
        events: list[SimulatedEvent] = []
        with contextlib.suppress(TimeoutError):
            events.append(await asyncio.wait_for(pull_point.queue.get(), seconds))
        while events and len(events) < limit and not pull_point.queue.empty():
            events.append(pull_point.queue.get_nowait())
        address = f"{self.advertised}/onvif/subscription/{pull_point.id}"
        messages = "".join(self._notification(event, address) for event in events)
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{_time(self.now())}</tev:CurrentTime>"
            f"<tev:TerminationTime>{_time(pull_point.termination)}</tev:TerminationTime>{messages}"
            "</tev:PullMessagesResponse>"
        )

    def _notification(self, event: SimulatedEvent, address: str) -> str:
        channel = event.channel or 1
        state = "true" if event.active else "false"
        topic, source, data = {
            EventKind.MOTION: (
                "tns1:RuleEngine/CellMotionDetector/Motion",
                f'<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceConfig_{channel}"/>'
                f'<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsConfig_{channel}"/>'
                '<tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/>',
                f'<tt:SimpleItem Name="IsMotion" Value="{state}"/>',
            ),
            EventKind.VIDEO_LOSS: (
                "tns1:VideoSource/SignalLoss",
                f'<tt:SimpleItem Name="Source" Value="VideoSource_{channel}"/>',
                f'<tt:SimpleItem Name="State" Value="{state}"/>',
            ),
            EventKind.TAMPER: (
                "tns1:VideoSource/GlobalSceneChange/ImagingService",
                f'<tt:SimpleItem Name="Source" Value="VideoSource_{channel}"/>',
                f'<tt:SimpleItem Name="State" Value="{state}"/>',
            ),
            EventKind.STORAGE_FAULT: (
                "tns1:Device/HardwareFailure/StorageFailure",
                '<tt:SimpleItem Name="Token" Value="SD_1"/>',
                f'<tt:SimpleItem Name="Failed" Value="{state}"/>',
            ),
        }.get(
            event.kind,
            (
                "tns1:Device/Trigger/DigitalInput",
                f'<tt:SimpleItem Name="InputToken" Value="DigitalInput_{channel}"/>',
                f'<tt:SimpleItem Name="LogicalState" Value="{state}"/>',
            ),
        )
        stamp = _time(event.time or self.now())
        return (
            "<wsnt:NotificationMessage>"
            f"<wsnt:SubscriptionReference><wsa:Address>{escape(address)}</wsa:Address></wsnt:SubscriptionReference>"
            f'<wsnt:Topic Dialect="{_TOPIC_DIALECT}">{topic}</wsnt:Topic>'
            f"<wsnt:ProducerReference><wsa:Address>{escape(self.service_url('events'))}</wsa:Address>"
            "</wsnt:ProducerReference>"
            f'<wsnt:Message><tt:Message UtcTime="{stamp}" PropertyOperation="Changed">'
            f"<tt:Source>{source}</tt:Source><tt:Data>{data}</tt:Data></tt:Message></wsnt:Message>"
            "</wsnt:NotificationMessage>"
        )

    async def _renew(self, request: web.Request, body: ET.Element) -> str:
        pull_point = self._pull_point_of(request)
        asked = text(body, "TerminationTime")
        wanted = _termination(asked, self.now())
        if wanted is None or wanted <= self.now() or (asked.startswith("P") and not self.relative_renew):
            raise _Fault(
                400, "SOAP-ENV:Sender", ("wsnt:UnacceptableTerminationTimeFault",), "bad TerminationTime"
            )
        pull_point.termination = wanted
        self.renewals += 1
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{_time(wanted)}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{_time(self.now())}</wsnt:CurrentTime></wsnt:RenewResponse>"
        )

    async def _unsubscribe(self, request: web.Request, body: ET.Element) -> str:
        pull_point = self._pull_point_of(request)
        self._drop(pull_point)
        if pull_point.task is not None:
            await asyncio.wait([pull_point.task])  # its event feed is closed when the answer leaves
        self.unsubscribes += 1
        return "<wsnt:UnsubscribeResponse/>"

    # Profile G
    def _recording_ranges(self) -> dict[int, tuple[datetime, datetime]]:
        by_channel: dict[int, list[SimulatedRecording]] = {}
        for recording in self.recordings:
            by_channel.setdefault(recording.channel, []).append(recording)
        return {
            channel: (min(r.start for r in spans), max(r.end for r in spans))
            for channel, spans in sorted(by_channel.items())
        }

    def _tracks(self, channel: int) -> list[tuple[str, str]]:
        audio = [("Audio", f"AUDIO{channel:03d}")] if self.profile.audio else []
        return [("Video", f"VIDEO{channel:03d}"), *audio]

    def _recording_information(self, channel: int, span: tuple[datetime, datetime]) -> str:
        start, end = _time(span[0]), _time(span[1])
        tracks = "".join(
            f"<tt:Track><tt:TrackToken>{token}</tt:TrackToken><tt:TrackType>{kind}</tt:TrackType>"
            f"<tt:Description>{kind} track</tt:Description><tt:DataFrom>{start}</tt:DataFrom>"
            f"<tt:DataTo>{end}</tt:DataTo></tt:Track>"
            for kind, token in self._tracks(channel)
        )
        return (
            f"<tt:RecordingToken>Recording_{channel}</tt:RecordingToken>"
            f"<tt:Source><tt:SourceId>VideoSource_{channel}</tt:SourceId><tt:Name>Camera {channel}</tt:Name>"
            f"<tt:Location>site</tt:Location><tt:Description>channel {channel}</tt:Description>"
            f"<tt:Address>{escape(self.service_url('device'))}</tt:Address></tt:Source>"
            f"<tt:EarliestRecording>{start}</tt:EarliestRecording><tt:LatestRecording>{end}</tt:LatestRecording>"
            f"<tt:Content>continuous</tt:Content>{tracks}<tt:RecordingStatus>Recording</tt:RecordingStatus>"
        )

    def _recording_of(self, body: ET.Element) -> tuple[int, tuple[datetime, datetime]]:
        token = text(body, "RecordingToken")
        for channel, span in self._recording_ranges().items():
            if token == f"Recording_{channel}":
                return channel, span
        raise _invalid("ter:NoRecording", f"no recording {token!r}")

    async def _find_recordings(self, request: web.Request, body: ET.Element) -> str:
        token = f"search-{next(self._ids)}"
        self._searches[token] = [
            f"<tt:RecordingInformation>{self._recording_information(c, s)}</tt:RecordingInformation>"
            for c, s in self._recording_ranges().items()
        ]
        return f"<tse:FindRecordingsResponse><tse:SearchToken>{token}</tse:SearchToken></tse:FindRecordingsResponse>"

    def _search(self, body: ET.Element) -> tuple[str, list[str]]:
        token = text(body, "SearchToken")
        if token not in self._searches:
            raise _invalid("ter:InvalidToken", f"no search {token!r}")
        return token, self._searches[token]

    async def _get_recording_search_results(self, request: web.Request, body: ET.Element) -> str:
        token, remaining = self._search(body)
        wanted = text(body, "MaxResults")
        count = min(
            self.search_page, int(wanted) if wanted.isdigit() and int(wanted) > 0 else self.search_page
        )
        page, remaining[:] = remaining[:count], remaining[count:]
        state = "Searching" if remaining else "Completed"
        if not remaining:
            del self._searches[token]
        return (
            f"<tse:GetRecordingSearchResultsResponse><tse:ResultList><tt:SearchState>{state}</tt:SearchState>"
            f"{''.join(page)}</tse:ResultList></tse:GetRecordingSearchResultsResponse>"
        )

    async def _end_search(self, request: web.Request, body: ET.Element) -> str:
        token, _ = self._search(body)
        del self._searches[token]
        return (
            f"<tse:EndSearchResponse><tse:Endpoint>{_time(self.now())}</tse:Endpoint></tse:EndSearchResponse>"
        )

    async def _get_recording_summary(self, request: web.Request, body: ET.Element) -> str:
        ranges = self._recording_ranges()
        start = min((s for s, _ in ranges.values()), default=self.now())
        end = max((e for _, e in ranges.values()), default=self.now())
        return (
            f"<tse:GetRecordingSummaryResponse><tse:Summary><tt:DataFrom>{_time(start)}</tt:DataFrom>"
            f"<tt:DataUntil>{_time(end)}</tt:DataUntil><tt:NumberRecordings>{len(ranges)}</tt:NumberRecordings>"
            "</tse:Summary></tse:GetRecordingSummaryResponse>"
        )

    async def _get_recording_information(self, request: web.Request, body: ET.Element) -> str:
        channel, span = self._recording_of(body)
        return (
            "<tse:GetRecordingInformationResponse><tse:RecordingInformation>"
            f"{self._recording_information(channel, span)}"
            "</tse:RecordingInformation></tse:GetRecordingInformationResponse>"
        )

    async def _get_recordings(self, request: web.Request, body: ET.Element) -> str:
        items = "".join(
            f"<trc:RecordingItem><tt:RecordingToken>Recording_{channel}</tt:RecordingToken>"
            f"<tt:Configuration><tt:Source><tt:SourceId>VideoSource_{channel}</tt:SourceId>"
            f"<tt:Name>Camera {channel}</tt:Name><tt:Location>site</tt:Location>"
            f"<tt:Description>channel {channel}</tt:Description><tt:Address>{escape(self.service_url('device'))}"
            "</tt:Address></tt:Source><tt:Content>continuous</tt:Content>"
            "<tt:MaximumRetentionTime>PT0S</tt:MaximumRetentionTime></tt:Configuration><tt:Tracks>"
            + "".join(
                f"<tt:Track><tt:TrackToken>{token}</tt:TrackToken><tt:Configuration><tt:TrackType>{kind}</tt:TrackType>"
                f"<tt:Description>{kind} track</tt:Description></tt:Configuration></tt:Track>"
                for kind, token in self._tracks(channel)
            )
            + "</tt:Tracks></trc:RecordingItem>"
            for channel, span in self._recording_ranges().items()
        )
        return f"<trc:GetRecordingsResponse>{items}</trc:GetRecordingsResponse>"

    async def _get_replay_uri(self, request: web.Request, body: ET.Element) -> str:
        channel, _ = self._recording_of(body)
        uri = escape(self._with_credentials(self.rtsp_url + self.replay_path(channel)))
        return f"<trp:GetReplayUriResponse><trp:Uri>{uri}</trp:Uri></trp:GetReplayUriResponse>"

    # -- WS-Discovery ----------------------------------------------------------------------------
    async def start_discovery(self, port: int = 0) -> int:
        """Answer WS-Discovery probes sent to 127.0.0.1:``port`` (a free one by default); returns it."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DiscoveryResponder(self), local_addr=("127.0.0.1", port)
        )
        self._discovery = transport
        return int(transport.get_extra_info("sockname")[1])

    def probe_matches(self, relates_to: str) -> bytes:
        """The ProbeMatches answering a probe (the agsh capture when captures include ``Probe``)."""
        device_service = self.service_url("device")
        if "Probe" in self.captures:
            return (
                self.captures["Probe"]
                .replace(b"RELATES_TO", escape(relates_to).encode())
                .replace(b"SERVICE_URI", escape(device_service).encode())
            )
        endpoint = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'camhub-sim:' + self.profile.serial)}"
        return (
            '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
            'xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
            f"<SOAP-ENV:Header><wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>"
            "<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
            "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>"
            '<wsdd:AppSequence MessageNumber="1" InstanceId="1"/></SOAP-ENV:Header>'
            "<SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch>"
            f"<wsa:EndpointReference><wsa:Address>{endpoint}</wsa:Address></wsa:EndpointReference>"
            "<wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types>"
            f"<wsdd:Scopes>{escape(' '.join(self.scopes()))}</wsdd:Scopes>"
            f"<wsdd:XAddrs>{escape(device_service)}</wsdd:XAddrs>"
            "<wsdd:MetadataVersion>1</wsdd:MetadataVersion>"
            "</wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ).encode()


class _DiscoveryResponder(asyncio.DatagramProtocol):
    def __init__(self, device: OnvifSimulator) -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            root = parse_xml("simulator", data)
        except DeviceError:
            return
        probe = child(root, "Body", "Probe")
        message_id = text(root, "Header", "MessageID")
        if probe is None or not message_id or self.transport is None:
            return
        wanted = {t.rsplit(":", 1)[-1] for t in text(probe, "Types").split()}
        if wanted and not wanted & {"NetworkVideoTransmitter", "Device"}:
            return
        self.transport.sendto(self.device.probe_matches(message_id), addr)


# -- helpers --------------------------------------------------------------------------------------
def _parse_soap(data: bytes) -> _Soap:
    try:
        root = parse_xml("client", data)
    except DeviceError as exc:
        return _Soap(None, error=exc.detail)
    body = child(root, "Body")
    operation = next(iter(body), None) if body is not None and local_name(root.tag) == "Envelope" else None
    if operation is None:
        return _Soap(None, error="no SOAP body")
    namespace, _, name = (
        operation.tag[1:].partition("}") if operation.tag.startswith("{") else ("", "", operation.tag)
    )
    return _Soap(root, operation, namespace, name)


def _soap_response(body: str, status: int = 200) -> web.Response:
    document = f"{_ENVELOPE}<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    return web.Response(
        status=status, body=document.encode(), content_type="application/soap+xml", charset="utf-8"
    )


def _video_source(tag: str, channel: int) -> str:
    return (
        f'<{tag} token="VideoSourceConfig_{channel}"><tt:Name>VideoSourceConfig_{channel}</tt:Name>'
        f"<tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_{channel}</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="1920" height="1080"/></{tag}>'
    )


def _audio_source(tag: str, channel: int) -> str:
    return (
        f'<{tag} token="AudioSourceConfig_{channel}"><tt:Name>AudioSourceConfig_{channel}</tt:Name>'
        f"<tt:UseCount>1</tt:UseCount><tt:SourceToken>AudioSource_{channel}</tt:SourceToken></{tag}>"
    )


def _date_time(moment: datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{moment.hour}</tt:Hour><tt:Minute>{moment.minute}</tt:Minute>"
        f"<tt:Second>{moment.second}</tt:Second></tt:Time><tt:Date><tt:Year>{moment.year}</tt:Year>"
        f"<tt:Month>{moment.month}</tt:Month><tt:Day>{moment.day}</tt:Day></tt:Date>"
    )


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _termination(value: str, now: datetime) -> datetime | None:
    """An absolute ``xs:dateTime`` or a relative ``xs:duration`` (``PT60S``) from ``now``."""
    value = value.strip()
    if value.startswith(("P", "-P")):
        seconds = _duration_seconds(value)
        return None if seconds is None else now + timedelta(seconds=seconds)
    return _parse_time(value) if value else None


def _duration_seconds(value: str) -> float | None:
    total, number, in_time = 0.0, "", False
    units = {"D": 86400.0, "H": 3600.0, "S": 1.0}
    for char in value.lstrip("-")[1:]:
        if char == "T":
            in_time = True
        elif char.isdigit() or char == ".":
            number += char
        elif number:
            scale = 60.0 if char == "M" and in_time else units.get(char)
            if scale is None:
                return None
            total += float(number) * scale
            number = ""
        else:
            return None
    return None if number else total


def _captured_clock_shift(capture: bytes | None) -> timedelta:
    """How far the clock of a captured GetSystemDateAndTime is from now (zero without one)."""
    if capture is None:
        return timedelta(0)
    stamp = child(
        parse_xml("capture", capture),
        "Body",
        "GetSystemDateAndTimeResponse",
        "SystemDateAndTime",
        "UTCDateTime",
    )
    try:
        captured = datetime(
            int(text(stamp, "Date", "Year")),
            int(text(stamp, "Date", "Month")),
            int(text(stamp, "Date", "Day")),
            int(text(stamp, "Time", "Hour")),
            int(text(stamp, "Time", "Minute")),
            int(text(stamp, "Time", "Second")),
            tzinfo=UTC,
        )
    except ValueError:
        return timedelta(0)
    return captured - datetime.now(UTC)

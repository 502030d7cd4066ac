"""WS-Discovery: find ONVIF devices on a network segment with a Probe and read their ProbeMatches.

A Probe is a SOAP 1.2 envelope sent over UDP to port 3702: to the multicast group
239.255.255.250 (every device on the segment answers), or to one address (a directed probe).
Devices answer with ``ProbeMatches`` to the sender's port: their endpoint reference, types,
scopes (``onvif://www.onvif.org/name/…``, ``…/hardware/…``) and XAddrs (device service URLs).

Answers are untrusted datagrams: each is parsed safely (no DTD or entities), must relate to
this probe's message id, and a malformed one is skipped, not fatal. The probe is sent twice, as
SOAP-over-UDP recommends, once per device type (``dn:NetworkVideoTransmitter`` for cameras and
encoders, ``tds:Device`` for the rest); answers are merged by endpoint.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from urllib.parse import unquote

import attrs

from camhub.errors import DeviceError, DeviceUnreachable
from camhub.log import get_logger
from camhub.net import child, children, parse_xml, text

__all__ = ["DiscoveredDevice", "discover", "parse_probe_matches", "probe_message"]

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
_TYPES = ("dn:NetworkVideoTransmitter", "tds:Device")
_MAX_DEVICES = 4096


@attrs.frozen
class DiscoveredDevice:
    """A device that answered a probe."""

    endpoint: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    sender: str = ""  # the IP address the answer came from

    def scope(self, kind: str) -> str:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope, decoded (or "")."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        found = next((s[len(prefix) :] for s in self.scopes if s.startswith(prefix)), "")
        return unquote(found)

    @property
    def name(self) -> str:
        return self.scope("name")

    @property
    def hardware(self) -> str:
        return self.scope("hardware")


def probe_message(message_id: str, types: str = _TYPES[0]) -> bytes:
    """A WS-Discovery Probe for ``types`` (a space-separated list of QNames)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        f'xmlns:a="{_WSA}" xmlns:d="{_WSD}" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        "<s:Header>"
        f'<a:Action s:mustUnderstand="1">{_WSD}/Probe</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        f"<a:ReplyTo><a:Address>{_WSA}/role/anonymous</a:Address></a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
        "</s:Header>"
        f"<s:Body><d:Probe><d:Types>{types}</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def parse_probe_matches(
    data: bytes, message_id: str | None = None, sender: str = ""
) -> list[DiscoveredDevice]:
    """The devices in a ``ProbeMatches`` datagram (none when it answers another probe).

    :raises DeviceProtocolError: the datagram is not usable XML.
    """
    root = parse_xml("ws-discovery", data)
    header = child(root, "Header")
    if message_id is not None and text(header, "RelatesTo") != message_id:
        return []
    matches = child(root, "Body", "ProbeMatches")
    found = []
    for match in children(matches, "ProbeMatch"):
        endpoint = text(match, "EndpointReference", "Address")
        xaddrs = tuple(text(match, "XAddrs").split())
        if endpoint or xaddrs:
            found.append(
                DiscoveredDevice(
                    endpoint=endpoint or xaddrs[0],
                    xaddrs=xaddrs,
                    scopes=tuple(text(match, "Scopes").split()),
                    types=tuple(text(match, "Types").split()),
                    sender=sender,
                )
            )
    return found


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_ids: set[str]) -> None:
        self.message_ids = message_ids
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        sender = str(addr[0])
        try:
            root_matches = [m for mid in self.message_ids for m in parse_probe_matches(data, mid, sender)]
        except DeviceError as exc:
            get_logger(__name__).debug("onvif.discovery_bad_answer", sender=sender, error=exc.detail)
            return
        for device in root_matches:
            if len(self.found) < _MAX_DEVICES:
                self.found.setdefault(device.endpoint, device)

    def error_received(self, exc: Exception) -> None:
        get_logger(__name__).debug("onvif.discovery_socket_error", error=str(exc))


async def discover(
    interface_address: str = "127.0.0.1",
    timeout: float = 2.0,
    multicast: bool = True,
    *,
    port: int = PORT,
    target: str | None = None,
) -> list[DiscoveredDevice]:
    """Probe for ONVIF devices and return those that answered within ``timeout`` seconds.

    :param interface_address: the local IPv4 address to send from (selects the interface).
    :param multicast: probe the multicast group; otherwise send a directed probe to
        ``target`` (default: ``interface_address``).
    :param port: the UDP port probes go to (3702; tests point it at a simulator).
    :raises DeviceUnreachable: the probe could not be sent from that interface.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.bind((interface_address, 0))
        if multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_address))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise DeviceUnreachable(
            "ws-discovery", f"cannot probe from {interface_address}: {exc.strerror}"
        ) from None
    probes = {f"urn:uuid:{uuid.uuid4()}": types for types in _TYPES}
    collector = _Collector(set(probes))
    transport, _ = await loop.create_datagram_endpoint(lambda: collector, sock=sock)
    destination = (MULTICAST_GROUP if multicast else (target or interface_address), port)
    try:
        for attempt in range(2):
            for message_id, types in probes.items():
                try:
                    transport.sendto(probe_message(message_id, types), destination)
                except OSError as exc:
                    raise DeviceUnreachable(
                        "ws-discovery", f"cannot send a probe to {destination[0]}:{port}: {exc.strerror}"
                    ) from None
            if attempt == 0:
                await asyncio.sleep(min(0.1, timeout / 4))
        await asyncio.sleep(max(0.0, timeout - min(0.1, timeout / 4)))
    finally:
        transport.close()
    return sorted(collector.found.values(), key=lambda d: (d.sender, d.endpoint))

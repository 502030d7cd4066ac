"""SOAP 1.2 for ONVIF without WSDLs: envelope templates, WS-Security UsernameToken, answers and faults.

A request is a small template filled with XML-escaped values; an answer is parsed with
:func:`camhub.net.parse_xml` (no DTD, no entities, no external references) and read by local
name, because devices disagree on prefixes and sometimes on namespaces. A SOAP fault becomes a
:mod:`camhub.errors` exception: ``ter:NotAuthorized`` and the WS-Security failure codes become
:class:`~camhub.errors.DeviceAuthError`, ``ter:ActionNotSupported`` becomes
:class:`~camhub.errors.DeviceUnsupported`, anything else :class:`~camhub.errors.DeviceProtocolError`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from xml.sax.saxutils import escape, quoteattr

import attrs

from camhub.errors import DeviceAuthError, DeviceProtocolError, DeviceUnsupported
from camhub.net import child, children, local_name, parse_xml, text

__all__ = [
    "CONTENT_TYPE",
    "NS",
    "SoapFault",
    "answer_of",
    "envelope",
    "fault_of",
    "format_datetime",
    "format_duration",
    "parse_datetime",
    "parse_duration",
    "password_digest",
    "raise_fault",
    "username_token",
    "x",
]

#: Namespaces declared on every request envelope, so body templates can use these prefixes.
NS: Mapping[str, str] = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}

#: SOAP 1.2 over HTTP; the action travels as a parameter of the content type.
CONTENT_TYPE = "application/soap+xml; charset=utf-8"

_ENVELOPE_OPEN = (
    "<?xml version='1.0' encoding='UTF-8'?><s:Envelope "
    + " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
    + ">"
)
_PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
_BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

# Fault codes (local part of the QName) that mean "these credentials were refused".
_AUTH_CODES = frozenset(
    {
        "NotAuthorized",
        "FailedAuthentication",
        "InvalidSecurity",
        "InvalidSecurityToken",
        "SecurityTokenUnavailable",
        "FailedCheck",
        "MessageExpired",
        "SenderNotAuthorized",
    }
)
# Fault codes that mean "the device does not do this".
_UNSUPPORTED_CODES = frozenset(
    {"ActionNotSupported", "NoSuchService", "NotSupported", "OperationNotSupported"}
)


def x(value: object) -> str:
    """``value`` as XML character data (``&``, ``<``, ``>`` escaped)."""
    return escape(str(value))


def envelope(body: str, *, header: str = "") -> bytes:
    """A SOAP 1.2 envelope around ``body`` (and ``header`` when given), UTF-8 encoded."""
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return f"{_ENVELOPE_OPEN}{head}<s:Body>{body}</s:Body></s:Envelope>".encode()


# -- WS-Security ------------------------------------------------------------------------------
def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken PasswordDigest: Base64(SHA-1(nonce + created + password))."""
    raw = nonce + created.encode("utf-8") + password.encode("utf-8")
    return base64.b64encode(hashlib.sha1(raw, usedforsecurity=True).digest()).decode("ascii")


def username_token(username: str, password: str, created: datetime, *, nonce: bytes | None = None) -> str:
    """A ``wsse:Security`` header with a digest UsernameToken created at ``created``.

    ``created`` must already be on the device's clock (camhub's clock plus the measured offset):
    devices refuse a token whose ``Created`` is more than a few seconds from their own time.
    """
    nonce = secrets.token_bytes(16) if nonce is None else nonce
    stamp = format_datetime(created)
    return (
        '<wsse:Security s:mustUnderstand="1"><wsse:UsernameToken>'
        f"<wsse:Username>{x(username)}</wsse:Username>"
        f'<wsse:Password Type="{_PASSWORD_DIGEST}">{password_digest(nonce, stamp, password)}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{_BASE64}">{base64.b64encode(nonce).decode("ascii")}</wsse:Nonce>'
        f"<wsu:Created>{stamp}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def addressing(action: str, to: str, reference_parameters: str = "") -> str:
    """WS-Addressing headers (event subscriptions are routed by them on some devices)."""
    message_id = f"urn:uuid:{_uuid4()}"
    return (
        f"<wsa:Action>{x(action)}</wsa:Action><wsa:MessageID>{message_id}</wsa:MessageID>"
        f"<wsa:To>{x(to)}</wsa:To>{reference_parameters}"
    )


def _uuid4() -> str:
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def attribute(value: str) -> str:
    """``value`` quoted for use as an XML attribute value."""
    return quoteattr(value)


# -- answers and faults -----------------------------------------------------------------------
@attrs.frozen
class SoapFault:
    """A SOAP fault: its code and subcodes (local names) and its reason text."""

    code: str
    subcodes: tuple[str, ...]
    reason: str

    @property
    def codes(self) -> tuple[str, ...]:
        return (self.code, *self.subcodes)


def fault_of(body: ET.Element | None) -> SoapFault | None:
    """The fault in a SOAP ``Body`` (SOAP 1.2 ``Code/Subcode`` chain or SOAP 1.1 ``faultcode``)."""
    fault = child(body, "Fault")
    if fault is None:
        return None
    code_el = child(fault, "Code")
    if code_el is not None:
        code = _qname_local(text(code_el, "Value"))
        subcodes: list[str] = []
        sub = child(code_el, "Subcode")
        while sub is not None and len(subcodes) < 8:
            subcodes.append(_qname_local(text(sub, "Value")))
            sub = child(sub, "Subcode")
        reason = text(fault, "Reason", "Text")
    else:  # SOAP 1.1
        code = _qname_local(text(fault, "faultcode"))
        subcodes = []
        reason = text(fault, "faultstring")
    return SoapFault(code, tuple(s for s in subcodes if s), reason)


def raise_fault(device_id: str, operation: str, fault: SoapFault) -> NoReturn:
    """Raise the :mod:`camhub.errors` exception that ``fault`` means."""
    shown = "/".join(fault.codes)
    reason = _printable(fault.reason)
    detail = f"{operation}: SOAP fault {shown}" + (f" ({reason})" if reason else "")
    if _AUTH_CODES.intersection(fault.codes):
        raise DeviceAuthError(device_id, f"credentials refused: {detail}")
    if _UNSUPPORTED_CODES.intersection(fault.codes):
        raise DeviceUnsupported(device_id, detail)
    raise DeviceProtocolError(device_id, detail)


def answer_of(device_id: str, operation: str, status: int, body: bytes) -> ET.Element:
    """The answer element (first child of the SOAP ``Body``) of a response to ``operation``.

    :raises DeviceProtocolError: not well-formed or refused XML (DTD, entities), not a SOAP
        envelope, an empty body, an answer to another operation, or an HTTP error without a fault.
    :raises DeviceAuthError: a fault meaning the credentials were refused.
    :raises DeviceUnsupported: a fault meaning the operation is not supported, or HTTP 404/405/501.
    """
    if not body.strip():
        _raise_status(device_id, operation, status, "an empty answer")
    try:
        root = parse_xml(device_id, body)
    except DeviceProtocolError as exc:
        raise DeviceProtocolError(
            device_id, f"{operation}: the answer is not usable XML: {exc.detail}"
        ) from None
    if local_name(root.tag) != "Envelope":
        _raise_status(
            device_id, operation, status, f"a <{local_name(root.tag)}> document, not a SOAP envelope"
        )
    soap_body = child(root, "Body")
    fault = fault_of(soap_body)
    if fault is not None:
        raise_fault(device_id, operation, fault)
    if not 200 <= status < 300:
        _raise_status(device_id, operation, status, "an HTTP error")
    answer = next(iter(soap_body), None) if soap_body is not None else None
    if answer is None:
        raise DeviceProtocolError(device_id, f"{operation}: the SOAP answer has an empty body")
    expected = f"{operation}Response".lower()
    if local_name(answer.tag).lower() != expected:
        raise DeviceProtocolError(
            device_id, f"{operation}: expected {operation}Response, got {_printable(local_name(answer.tag))}"
        )
    return answer


def _raise_status(device_id: str, operation: str, status: int, what: str) -> NoReturn:
    if status in (404, 405, 501):
        raise DeviceUnsupported(device_id, f"{operation}: the device answered HTTP {status}")
    if 200 <= status < 300:
        raise DeviceProtocolError(device_id, f"{operation}: the device answered {what}")
    raise DeviceProtocolError(device_id, f"{operation}: the device answered HTTP {status} with {what}")


def _qname_local(value: str) -> str:
    return value.rsplit(":", 1)[-1].strip()


def _printable(value: str, limit: int = 200) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in value).strip()
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


def simple_items(element: ET.Element | None) -> dict[str, str]:
    """``Name`` → ``Value`` of the ``tt:SimpleItem`` children of an event's Source or Data."""
    return {item.get("Name", ""): item.get("Value", "") for item in children(element, "SimpleItem")}


# -- XML Schema dates and durations -----------------------------------------------------------
_DATETIME = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_DURATION = re.compile(
    r"^\s*(-)?P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*$"
)


def parse_datetime(value: str) -> datetime | None:
    """An ``xs:dateTime`` as an aware UTC datetime; None when invalid (devices send minute 61).

    A value without a zone is taken as UTC, as ONVIF requires.
    """
    match = _DATETIME.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def format_datetime(moment: datetime) -> str:
    """``moment`` as ``xs:dateTime`` in UTC ending in ``Z``, to the second (as devices expect)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(value: str) -> timedelta | None:
    """An ``xs:duration`` (``PT60S``, ``PT1H``, ``P1D``); months and years count 30 and 365 days."""
    match = _DURATION.match(value)
    if match is None or value.strip().endswith(("P", "T")):
        return None
    negative, years, months, days, hours, minutes, seconds = match.groups()
    total = timedelta(
        days=float(years or 0) * 365 + float(months or 0) * 30 + float(days or 0),
        hours=float(hours or 0),
        minutes=float(minutes or 0),
        seconds=float(seconds or 0),
    )
    return -total if negative else total


def format_duration(duration: timedelta) -> str:
    """``duration`` as ``xs:duration`` in whole seconds (``PT60S``); devices reject fractions."""
    return f"PT{max(0, round(duration.total_seconds()))}S"

"""The SOAP layer on its own: WS-Security digests, faults, unsafe or broken XML, dates and durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onvif_testing import BILLION_LAUGHS, EXTERNAL_ENTITY

from camhub.errors import DeviceAuthError, DeviceProtocolError, DeviceUnsupported
from camhub.net import child, parse_xml, text
from camhub.testing.onvif import load_capture
from camhub_onvif.soap import (
    answer_of,
    envelope,
    format_datetime,
    format_duration,
    parse_datetime,
    parse_duration,
    password_digest,
    username_token,
)

AGSH_WITH_TOKENS = [
    "agsh_GetCapabilities.xml",
    "agsh_GetDeviceInformation.xml",
    "agsh_GetProfiles.xml",
    "agsh_GetServices.xml",
    "agsh_GetStreamUri.xml",
    "agsh_GetSnapshotUri.xml",  # not well-formed: its token is read with a regular expression
]
_TOKEN = re.compile(
    rb"<wsse:Password[^>]*>([^<]+)</wsse:Password>\s*<wsse:Nonce>([^<]+)</wsse:Nonce>\s*<wsu:Created>([^<]+)</wsu:Created>"
)


@pytest.mark.parametrize("name", AGSH_WITH_TOKENS)
def test_password_digest_matches_real_tokens(name: str) -> None:
    """The agsh captures carry UsernameTokens made by a real client with password 9999."""
    import base64

    digest, nonce, created = _TOKEN.search(load_capture(name)).groups()  # type: ignore[union-attr]
    assert password_digest(base64.b64decode(nonce), created.decode(), "9999") == digest.decode()


def test_username_token_is_well_formed_and_verifiable() -> None:
    import base64
    import hashlib

    created = datetime(2026, 3, 1, 7, 8, 9, 654321, tzinfo=UTC)
    header = username_token("ad<min>&", "pässword", created, nonce=b"0123456789abcdef")
    root = parse_xml("t", envelope("<tds:GetDeviceInformation/>", header=header))
    token = child(root, "Header", "Security", "UsernameToken")
    assert text(token, "Username") == "ad<min>&"
    assert text(token, "Created") == "2026-03-01T07:08:09Z"  # UTC, to the second, ending in Z
    nonce = base64.b64decode(text(token, "Nonce"))
    expected = hashlib.sha1(nonce + b"2026-03-01T07:08:09Z" + "pässword".encode(), usedforsecurity=False)
    assert text(token, "Password") == base64.b64encode(expected.digest()).decode()
    assert "pässword" not in envelope("<x/>", header=header).decode()


def test_created_is_written_in_utc_from_any_zone() -> None:
    hanoi = datetime(2026, 3, 1, 14, 0, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Ho_Chi_Minh")
    )
    assert format_datetime(hanoi) == "2026-03-01T14:00:00Z"


def _fault(code: str, subcode: str = "", reason: str = "because") -> bytes:
    sub = f"<s:Subcode><s:Value>{subcode}</s:Value></s:Subcode>" if subcode else ""
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error" '
        'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
        f"<s:Body><s:Fault><s:Code><s:Value>{code}</s:Value>{sub}</s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>'
    ).encode()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (_fault("s:Sender", "ter:NotAuthorized"), DeviceAuthError),
        (_fault("s:Sender", "wsse:FailedAuthentication"), DeviceAuthError),
        (_fault("wsse:FailedAuthentication"), DeviceAuthError),
        (_fault("s:Receiver", "ter:ActionNotSupported"), DeviceUnsupported),
        (_fault("s:Sender", "ter:InvalidArgVal"), DeviceProtocolError),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault>'
            b"<faultcode>wsse:FailedAuthentication</faultcode><faultstring>no</faultstring></e:Fault></e:Body></e:Envelope>",
            DeviceAuthError,
        ),
    ],
)
def test_faults_map_to_camhub_errors(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        answer_of("cam", "GetDeviceInformation", 400, body)
    assert type(caught.value) is error
    assert "GetDeviceInformation" in str(caught.value)
    assert "cam" in str(caught.value)


def test_fault_reason_is_shown_printable_and_bounded() -> None:
    with pytest.raises(DeviceProtocolError) as caught:
        answer_of("cam", "GetProfiles", 500, _fault("s:Receiver", "ter:Busy", "x\u202e\u2028\n" + "y" * 500))
    message = str(caught.value)
    assert (
        not {"\u202e", "\u2028", "\n"} & set(message) and len(message) < 400 and "ter:Busy" not in message
    )  # local names shown
    assert "Receiver/Busy" in message


def test_not_well_formed_capture_is_a_clear_protocol_error() -> None:
    """agsh_GetSnapshotUri.xml uses the SOAP-ENV prefix without declaring it."""
    with pytest.raises(DeviceProtocolError) as caught:
        answer_of("cam", "GetSnapshotUri", 200, load_capture("agsh_GetSnapshotUri.xml"))
    assert "GetSnapshotUri: the answer is not usable XML" in str(caught.value)
    assert "unbound prefix" in str(caught.value)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(DeviceProtocolError, match="refused XML"):
        answer_of("cam", "GetDeviceInformation", 200, body)


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (200, b"", DeviceProtocolError, "empty answer"),
        (404, b"", DeviceUnsupported, "HTTP 404"),
        (200, b"<html><body>hello</body></html>", DeviceProtocolError, "not a SOAP envelope"),
        (500, b"<html><body>oops</body></html>", DeviceProtocolError, "HTTP 500"),
        (200, envelope(""), DeviceProtocolError, "empty body"),
        (
            200,
            envelope("<tds:GetUsersResponse/>"),
            DeviceProtocolError,
            "expected GetDeviceInformationResponse",
        ),
    ],
)
def test_answers_that_are_not_answers(status: int, body: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        answer_of("cam", "GetDeviceInformation", status, body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-08-17T00:56:16Z", datetime(2024, 8, 17, 0, 56, 16, tzinfo=UTC)),
        ("2024-08-17T00:56:16.5Z", datetime(2024, 8, 17, 0, 56, 16, 500000, tzinfo=UTC)),
        ("2024-08-17T07:56:16+07:00", datetime(2024, 8, 17, 0, 56, 16, tzinfo=UTC)),
        ("2024-08-17T00:56:16", datetime(2024, 8, 17, 0, 56, 16, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2024-08-17T00:61:16Z", None),  # a real camera's TerminationTime
        ("", None),
        ("tomorrow", None),
    ],
)
def test_parse_datetime(value: str, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PT5S", timedelta(seconds=5)),
        ("PT60S", timedelta(seconds=60)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("PT1093754.348S", timedelta(seconds=1093754.348)),
        ("P", None),
        ("PT", None),
        ("5 seconds", None),
    ],
)
def test_parse_duration(value: str, expected: timedelta | None) -> None:
    assert parse_duration(value) == expected


@given(st.integers(min_value=0, max_value=10**7))
def test_durations_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@given(st.text(max_size=60))
def test_date_and_duration_parsers_never_raise(value: str) -> None:
    parse_datetime(value)
    parse_duration(value)

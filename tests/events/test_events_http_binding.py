"""HTTP triggers decode CloudEvents exactly as the HTTP protocol binding says.

Each test cites its section of cloudevents/spec ``bindings/http-protocol-binding.md`` (HTTP) or
``formats/json-format.md`` (JSON) and uses the specification's own examples where it has them.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import CloudEventsSettings
from sor.errors import EventMappingError
from sor.events.batch import to_batch
from sor.events.headers import attribute_value

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
SETTINGS = CloudEventsSettings()
TRIGGERS = ["http_api_v2.json", "function_url.json", "apigateway_rest_v1.json"]
CE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


def request(headers: dict[str, str], body: bytes, trigger: str = "http_api_v2.json") -> Any:
    """The documented request event of ``trigger`` carrying ``headers`` and ``body``."""
    event = copy.deepcopy(json.loads((DATA / trigger).read_text())["event"])
    event["headers"] = headers
    event.pop("multiValueHeaders", None)
    try:
        event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
    except UnicodeDecodeError:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def decoded(headers: dict[str, str], body: bytes = b"", trigger: str = "http_api_v2.json") -> Any:
    (record,) = to_batch(request(headers, body, trigger), SETTINGS).records
    return record.event


# --- 3.1.3.2 HTTP Header Values: quoted strings, then one round of percent-decoding ------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('"hello \\"world\\""', 'hello "world"'),  # the example
        ('"hello world"', "hello world"),
        ('"a\\\\b"', "a\\b"),  # a quoted-pair escapes the backslash itself
        ('"Euro%20%E2%82%AC"', "Euro €"),  # unquoted first, then percent-decoded
        ('"100\\%25"', "100%"),  # quoted-pair of any VCHAR, here '%'
        ("plain", "plain"),
        ('  "padded"\t', "padded"),  # RFC 7230 3.2: whitespace around the value is not the value
    ],
)
def test_3_1_3_2_double_quoted_header_values_are_unescaped_first(raw: str, value: str) -> None:
    # "any HTTP header value MUST first be unescaped with respect to double-quoted strings, as
    # described in RFC7230, section 3.2.6 ... they MUST be supported when receiving events"
    assert decoded({**CE, "ce-subject": raw})["subject"] == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # the binding's own example: "Euro € 😀"
        ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \u20ac \U0001f600"),
        ("euro%20%e2%82%ac", "euro \u20ac"),  # "decoding MUST accept lower-case values"
        ("%41%42C", "ABC"),  # "unnecessarily percent-encoded MUST be accepted"
        ("100%2541", "100%41"),  # "A single round of percent-decoding"
        ("a+b", "a+b"),  # percent-encoding, not form encoding: '+' is a plus
    ],
)
def test_3_1_3_2_percent_decoding(raw: str, value: str) -> None:
    assert decoded({**CE, "ce-subject": raw})["subject"] == value
    assert attribute_value(raw, "subject", "here") == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # "encoded byte sequences which are invalid in UTF-8 MUST be rejected. (For example,
        # "%C0%A0" is an overlong encoding of U+0020, and MUST be rejected.)"
        ("%C0%A0", "not valid UTF-8"),
        ("%ED%A0%80", "not valid UTF-8"),  # a UTF-16 surrogate is no UTF-8 character
        ("%FF", "not valid UTF-8"),
        ("100%", "'%' not followed by two hex digits"),
        ("%zz", "'%' not followed by two hex digits"),
        ('"open', "unterminated quoted string"),
        ('"ends\\', "a backslash ends the quoted string"),
    ],
)
def test_3_1_3_2_malformed_header_values_are_refused_naming_the_attribute(
    raw: str, reason: str
) -> None:
    with pytest.raises(EventMappingError) as info:
        decoded({**CE, "ce-subject": raw})
    assert info.value.attribute == "subject"
    assert reason in info.value.reason
    assert "header 'ce-subject'" in info.value.message


def test_3_1_3_2_every_attribute_is_decoded_extensions_included() -> None:
    headers = {**CE, "ce-id": '"id 1"', "ce-comexampleextension1": "va%6Cue"}
    event = decoded(headers)
    assert (event["id"], event["comexampleextension1"]) == ("id 1", "value")


# --- 3.1.1 HTTP Content-Type and JSON format 3.1.1: nothing is inferred -------------------------


def test_binary_mode_without_content_type_infers_nothing() -> None:
    # JSON format 3.2, its last example: "Example event with a Binary-valued data_base64 but no
    # datacontenttype. Even though the data happens to be a valid JSON document when interpreted
    # as text, no content type is inferred." re-encoded in binary mode: "Note that there is no
    # content-type header present."
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.example.someevent",
        "ce-source": "/mycontext",
        "ce-id": "D234-1234-1234",
    }
    assert decoded(headers, b'{ "xyz": 123 }') == {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "D234-1234-1234",
        "data_base64": "eyAieHl6IjogMTIzIH0=",
    }


@pytest.mark.parametrize("body", [b"plain text", b"\x00\xff"])
def test_binary_mode_without_content_type_keeps_any_body_as_bytes(body: bytes) -> None:
    event = decoded(CE, body)
    assert "datacontenttype" not in event and "data" not in event
    assert base64.b64decode(event["data_base64"]) == body


def test_binary_mode_without_content_type_or_body_has_no_data() -> None:
    assert decoded(CE) == {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


def test_3_1_1_content_type_is_datacontenttype_and_ce_datacontenttype_is_not() -> None:
    # "a ce-datacontenttype HTTP header MUST NOT also be present": Content-Type is the one read.
    headers = {**CE, "content-type": "text/plain", "ce-datacontenttype": "application/json"}
    assert decoded(headers, b"hi")["datacontenttype"] == "text/plain"


def test_3_1_2_a_ce_data_header_is_no_attribute() -> None:
    with pytest.raises(EventMappingError) as info:
        decoded({**CE, "ce-data": "x"})
    assert info.value.attribute == "data"


# --- 3: the content mode is told by Content-Type ---------------------------------------------


def test_3_structured_mode_with_ce_headers_is_structured() -> None:
    # 3.2.3: "Implementations MAY include the same HTTP headers as defined for the binary mode."
    # 3: "If the value is prefixed with the CloudEvents media type application/cloudevents ...
    # the receiver uses structured mode."
    body = {"specversion": "1.0", "id": "from-body", "source": "/s", "type": "t", "data": [1]}
    headers = {**CE, "ce-id": "from-header", "content-type": "application/cloudevents+json"}
    assert decoded(headers, json.dumps(body).encode()) == body


def test_3_media_types_are_matched_case_insensitively_with_parameters() -> None:
    body = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    headers = {"Content-Type": "Application/CloudEvents+JSON; charset=UTF-8"}
    assert decoded(headers, json.dumps(body).encode(), "apigateway_rest_v1.json") == body


# --- the same event in binary and in structured mode is the same CloudEvent -------------------

RAW = b"\x00\x01\x02thrift\xff"
# (the event in JSON format, its binary-mode headers, its binary-mode body): JSON format 3.2's
# own examples, each "re-encoded using HTTP Binary Content Mode" as the specification prints it
# (the thrift bytes, a placeholder there, made real), then events for the header encoding.
SPEC = {"specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext"}
SPEC_HEADERS = {
    "ce-specversion": "1.0",
    "ce-type": "com.example.someevent",
    "ce-source": "/mycontext",
    "ce-time": "2018-04-05T17:31:00Z",
    "ce-comexampleextension1": "value",
    "ce-comexampleothervalue": "5",
}
EXT = {"time": "2018-04-05T17:31:00Z", "comexampleextension1": "value", "comexampleothervalue": 5}
PAIRS: list[tuple[str, dict[str, Any], dict[str, str], bytes]] = [
    (
        "binary data",
        {
            **SPEC,
            "id": "A234-1234-1234",
            **EXT,
            "datacontenttype": "application/vnd.apache.thrift.binary",
            "data_base64": base64.b64encode(RAW).decode(),
        },
        {
            **SPEC_HEADERS,
            "ce-id": "A234-1234-1234",
            "content-type": "application/vnd.apache.thrift.binary",
        },
        RAW,
    ),
    (
        "xml data",
        {
            **SPEC,
            "id": "B234-1234-1234",
            **EXT,
            "unsetextension": None,
            "datacontenttype": "application/xml",
            "data": '<much wow="xml"/>',
        },
        {**SPEC_HEADERS, "ce-id": "B234-1234-1234", "content-type": "application/xml"},
        b'<much wow="xml"/>',
    ),
    (
        "json object",
        {
            **SPEC,
            "subject": None,
            "id": "C234-1234-1234",
            **EXT,
            "datacontenttype": "application/json",
            "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
        },
        {**SPEC_HEADERS, "ce-id": "C234-1234-1234", "content-type": "application/json"},
        b'{\n  "appinfoA" : "abc",\n  "appinfoB" : 123,\n  "appinfoC" : true\n}',
    ),
    (
        "json number",
        {
            **SPEC,
            "subject": None,
            "id": "C234-1234-1234",
            **EXT,
            "datacontenttype": "application/json",
            "data": 1.5,
        },
        {**SPEC_HEADERS, "ce-id": "C234-1234-1234", "content-type": "application/json"},
        b"1.5",
    ),
    (
        "json string, no datacontenttype",
        {**SPEC, "subject": None, "id": "D234-1234-1234", **EXT, "data": "I'm just a string"},
        {**SPEC_HEADERS, "ce-id": "D234-1234-1234", "content-type": "application/json"},
        b'"I\'m just a string"',
    ),
    (
        "base64, no datacontenttype",
        {**SPEC, "id": "D234-1234-1234", "data_base64": "eyAieHl6IjogMTIzIH0="},
        {k: v for k, v in SPEC_HEADERS.items() if k in ("ce-specversion", "ce-type", "ce-source")}
        | {"ce-id": "D234-1234-1234"},
        b'{ "xyz": 123 }',
    ),
    (
        "percent-encoded attributes",
        {
            **SPEC,
            "id": "E1",
            "subject": 'order 42 "new" 100% \u20ac \U0001f600',
            "tenant": "caf\u00e9",
            "datacontenttype": "text/plain; charset=utf-8",
            "data": "caf\u00e9",
        },
        {
            "ce-specversion": "1.0",
            "ce-type": "com.example.someevent",
            "ce-source": "/mycontext",
            "ce-id": "E1",
            "ce-subject": "order%2042%20%22new%22%20100%25%20%E2%82%AC%20%F0%9F%98%80",
            "ce-tenant": "caf%C3%A9",
            "content-type": "text/plain; charset=utf-8",
        },
        "caf\u00e9".encode(),
    ),
    (
        "quoted attributes (older senders)",
        {**SPEC, "id": "F1", "subject": 'hello "world"', "datacontenttype": "text/csv"},
        {
            "ce-specversion": "1.0",
            "ce-type": "com.example.someevent",
            "ce-source": "/mycontext",
            "ce-id": "F1",
            "ce-subject": '"hello \\"world\\""',
            "content-type": "text/csv",
        },
        b"",
    ),
]


def as_read(ce: dict[str, Any]) -> dict[str, Any]:
    """``ce`` as the JSON format reads it: nulls unset (2.2), and a ``data`` member without
    ``datacontenttype`` is ``application/json`` (3.1.2: re-encoded in another binding, "the
    datacontenttype ... SHOULD be set explicitly to the implied application/json")."""
    out = {k: v for k, v in ce.items() if v is not None}
    if "data" in out and "datacontenttype" not in out:
        out["datacontenttype"] = "application/json"
    return out


@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize(("name", "event", "headers", "body"), PAIRS, ids=[p[0] for p in PAIRS])
def test_binary_and_structured_mode_give_the_same_cloudevent_over_a_set(
    trigger: str, name: str, event: dict[str, Any], headers: dict[str, str], body: bytes
) -> None:
    structured = decoded(
        {"content-type": "application/cloudevents+json"}, json.dumps(event).encode(), trigger
    )
    binary = decoded(headers, body, trigger)
    # The extension 5 is an Integer in JSON and its canonical string "5" in a header: the
    # binding carries only strings, so the integer is compared by its canonical string.
    binary_typed = {k: (5 if k == "comexampleothervalue" else v) for k, v in binary.items()}
    assert as_read(binary_typed) == as_read(structured), name
    assert structured == {k: v for k, v in event.items() if v is not None}, name

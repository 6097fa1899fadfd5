"""Python and Node handlers see identical CloudEvents, for every built-in source.

Each source's sample event is mapped by ``sor.events`` exactly as ``sor run`` maps it, then sent
to the real Python and Node adapters over their protocol pipes (``support.runtime_matrix``) under
``signature: cloudevent``. Each handler answers what it sees: its attributes and its data. The
Python handler reads them through the SDK's interface (``cloudevents.core``: ``get_attributes()``
and the getters), the Node handler from the structured object it is given.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import Adapter, start, write_files

from sor.config.model import CloudEventsSettings
from sor.events.batch import to_batch

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

PY_HANDLER = """\
import base64
from cloudevents.core.v1.event import CloudEvent

GETTERS = {"id": "get_id", "source": "get_source", "type": "get_type",
           "specversion": "get_specversion", "subject": "get_subject", "time": "get_time",
           "datacontenttype": "get_datacontenttype", "dataschema": "get_dataschema"}

def text(value):
    return value.isoformat() if hasattr(value, "isoformat") else value

def handler(event, context):
    assert isinstance(event, CloudEvent), type(event)
    attributes = event.get_attributes()
    for name, getter in GETTERS.items():  # the getters agree with get_attributes()
        assert getattr(event, getter)() == attributes.get(name), name
    for name, value in attributes.items():
        assert event.get_extension(name) == value, name
    data = event.get_data()
    if isinstance(data, bytes):
        data = {"base64": base64.b64encode(data).decode()}
    return {"attributes": {k: text(v) for k, v in attributes.items()}, "data": data}
"""
JS_HANDLER = """\
exports.handler = async (event) => {
  const attributes = {};
  for (const [name, value] of Object.entries(event)) {
    if (name !== 'data' && name !== 'data_base64') attributes[name] = value;
  }
  const data = 'data_base64' in event ? { base64: event.data_base64 } : (event.data ?? null);
  return { attributes, data };
};
"""


def sample(name: str) -> Any:
    return copy.deepcopy(json.loads((DATA / name).read_text())["event"])


def http(headers: dict[str, str], body: str) -> Any:
    event = sample("function_url.json")
    event.update(headers=headers, body=body, isBase64Encoded=False)
    return event


DIRECT = {  # json-format.md 3.2's JSON-object example, its null subject included
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "subject": None,
    "id": "C234-1234-1234",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "unsetextension": None,
    "datacontenttype": "application/json",
    "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
}
BINARY_HEADERS = {  # no ce-time: the event has no time, and no handler may see one
    "ce-specversion": "1.0",
    "ce-id": "b-1",
    "ce-source": "/orders",
    "ce-type": "com.example.order",
    "ce-subject": '"order \\"42\\""',
    "ce-tenant": "caf%C3%A9",
    "content-type": "application/json",
}
SOURCES: dict[str, Any] = {
    "s3": sample("s3_put.json"),
    "sns": sample("sns.json"),
    "sqs": sample("sqs.json"),
    "sqs fifo": sample("sqs_fifo.json"),
    "kinesis": sample("kinesis.json"),
    "dynamodb": sample("dynamodb.json"),
    "eventbridge": sample("eventbridge_ec2.json"),
    "scheduled": sample("eventbridge_scheduled.json"),
    "http request": sample("http_api_v2.json"),
    "http binary": http(BINARY_HEADERS, '{"n": 42}'),
    "http binary, no content type": http(
        {k: v for k, v in BINARY_HEADERS.items() if k != "content-type"}, "raw bytes"
    ),
    "http structured": http(
        {"content-type": "application/cloudevents+json"}, json.dumps({**DIRECT, "id": "s-1"})
    ),
    "direct": DIRECT,
    "generic": {"hello": "world"},
}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Adapter]]:
    root = write_files(tmp_path_factory.mktemp("fn"), {"app.py": PY_HANDLER, "app.js": JS_HANDLER})
    running = {
        language: start(language, root, "app.handler", signature="cloudevent")
        for language in ("python", "node")
    }
    try:
        for language, adapter in running.items():
            assert adapter.ready() == {"type": "ready", "seal": True}, (language, adapter.logs())
        yield running
    finally:
        for adapter in running.values():
            adapter.close()


def seen(adapter: Adapter, event: dict[str, Any], request_id: str) -> dict[str, Any]:
    answer = adapter.invoke(event, request_id)
    assert answer["type"] == "result", (answer, adapter.logs())
    result: dict[str, Any] = answer["result"]
    return result


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


@needs_node
@pytest.mark.parametrize("source", list(SOURCES))
def test_python_and_node_handlers_see_identical_attributes(
    adapters: dict[str, Adapter], source: str
) -> None:
    batch = to_batch(SOURCES[source], CloudEventsSettings(), request_id="req-1")
    assert batch.records
    for i, record in enumerate(batch.records):
        sent = record.event
        py = seen(adapters["python"], sent, f"{source}-{i}-py")
        js = seen(adapters["node"], sent, f"{source}-{i}-js")
        expected = {k: v for k, v in sent.items() if k not in ("data", "data_base64")}
        # Exactly the event's attributes, in both languages: nothing invented, nothing null.
        assert set(py["attributes"]) == set(js["attributes"]) == set(expected), source
        assert None not in js["attributes"].values()
        for name, value in expected.items():
            if name == "time":  # the SDK's interface gives a datetime: the same instant
                assert instant(py["attributes"]["time"]) == instant(value), source
                assert js["attributes"]["time"] == value, source
            else:
                assert py["attributes"][name] == js["attributes"][name] == value, (source, name)
        assert py["data"] == js["data"], source
        if "data_base64" in sent:
            assert py["data"] == {"base64": sent["data_base64"]}


@needs_node
def test_the_python_handler_gets_no_time_or_id_the_event_lacks(
    adapters: dict[str, Adapter],
) -> None:
    # The SDK's own constructor would fill them in: the adapter must not let it.
    event = {"specversion": "1.0", "id": "x-1", "source": "/s", "type": "t"}
    py = seen(adapters["python"], event, "no-time")
    assert py == {"attributes": event, "data": None}


@needs_node
def test_binary_data_reaches_python_as_bytes_and_node_as_base64(
    adapters: dict[str, Adapter],
) -> None:
    raw = b"\x00\xffbytes"
    event = {
        "specversion": "1.0",
        "id": "x-2",
        "source": "/s",
        "type": "t",
        "data_base64": base64.b64encode(raw).decode(),
    }
    py = seen(adapters["python"], event, "bytes-py")
    js = seen(adapters["node"], event, "bytes-js")
    assert py["data"] == js["data"] == {"base64": base64.b64encode(raw).decode()}


@needs_node
@pytest.mark.parametrize(
    ("time", "python"),
    [
        ("2018-04-05T17:31:00Z", "2018-04-05T17:31:00+00:00"),
        ("1985-04-12t23:20:50.52z", "1985-04-12T23:20:50.520000+00:00"),  # RFC 3339 5.6
        ("1937-01-01T12:00:27.87+00:20", "1937-01-01T12:00:27.870000+00:20"),
        # RFC 3339 5.7's leap second: a datetime holds no :60, so the instant just before it
        ("1990-12-31T23:59:60Z", "1990-12-31T23:59:59.999999+00:00"),
    ],
)
def test_every_rfc3339_time_sor_accepts_reaches_python_as_a_datetime(
    adapters: dict[str, Adapter], time: str, python: str
) -> None:
    event = {"specversion": "1.0", "id": "t-1", "source": "/s", "type": "t", "time": time}
    to_batch(event, CloudEventsSettings())  # sor accepts it
    py = seen(adapters["python"], event, f"time-{time}")
    assert py["attributes"]["time"] == python
    assert seen(adapters["node"], event, f"time-js-{time}")["attributes"]["time"] == time

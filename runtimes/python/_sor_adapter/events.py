"""CloudEvents through the SDK's ``cloudevents.core`` (only under the cloudevent signature).

The handler gets a ``cloudevents.core.v1.event.CloudEvent`` with exactly the attributes of the
event sor sent, no more: the SDK's constructor fills in a ``time`` (and an ``id``) an event
lacks, which the event never had and a Node handler would not see. sor sends the event in JSON
form with its null (unset) attributes already dropped; it is read as the SDK's JSON format reads
it (``time`` a datetime, ``data_base64`` bytes), without a round trip through JSON text.
"""

import base64

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as _SdkCloudEvent

# What the SDK's constructor invents when an event lacks it.
_FILLED_IN = ("id", "time")


class CloudEvent(_SdkCloudEvent):
    """The SDK's CloudEvent, holding only the attributes it is given."""

    def __init__(self, attributes, data=None):
        given = frozenset(attributes)
        super().__init__(attributes, data)
        own = self.get_attributes()  # the SDK's own dict: what every getter reads
        for name in _FILLED_IN:
            if name not in given:
                own.pop(name, None)


def to_cloudevent(structured):
    attributes = {
        name: value
        for name, value in structured.items()
        if value is not None and name not in ("data", "data_base64")
    }
    if "time" in attributes:
        attributes["time"] = _timestamp(attributes["time"])
    data = structured.get("data")
    if data is None and structured.get("data_base64") is not None:
        data = base64.b64decode(structured["data_base64"])
    return CloudEvent(attributes, data)


def _timestamp(text):
    """An RFC 3339 time as the SDK's JSON format reads it (a datetime, to the microsecond)."""
    from dateutil.parser import isoparse  # the SDK's own timestamp parser (its dependency)

    try:
        return isoparse(text)
    except ValueError:
        import re

        # RFC 3339 allows a leap second (:60); a datetime cannot hold one: the last instant
        # before it is the nearest it can say.
        leap = re.sub(r"^(.{17})60(?:\.\d+)?", r"\g<1>59.999999", text)
        if leap == text:
            raise
        return isoparse(leap)


def from_cloudevent(event):
    import json

    return json.loads(JSONFormat().write(event))

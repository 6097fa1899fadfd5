"""CloudEvents through the SDK's ``cloudevents.core`` (only under the cloudevent signature)."""

import json


def to_cloudevent(structured):
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    return JSONFormat().read(CloudEvent, json.dumps(structured).encode())


def from_cloudevent(event):
    from cloudevents.core.formats.json import JSONFormat

    return json.loads(JSONFormat().write(event))

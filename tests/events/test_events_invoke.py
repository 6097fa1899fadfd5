"""CloudEvents through the real runtime loop: ``sor local invoke`` on a function folder.

Each test runs sor as a real process (supervisor, runtime loop, embedded emulator, the Python
adapter) and looks at what Lambda would get: the payload, the exit status, and what ran.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from support.runtime_matrix import local_invoke, write_files

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
CE_FUNCTION = "version: 1\nruntime: {handler: app.handler, signature: cloudevent}\n"
# Notes each message it handles; fails the ones whose body says so.
FIFO_HANDLER = """\
def handler(cloud_event, context):
    with open('ran.log', 'a') as log:
        log.write(cloud_event.get_id() + '\\n')
    if cloud_event.get_data() == 'fail':
        raise ValueError('cannot handle ' + cloud_event.get_id())
"""


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())["event"]  # type: ignore[no-any-return]


def fifo_batch(bodies: list[str]) -> dict[str, Any]:
    """AWS's documented FIFO queue event with one message per body, in one message group."""
    event = sample("sqs_fifo.json")
    template = event["Records"][0]
    event["Records"] = []
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"m{i}"
        record["body"] = body
        event["Records"].append(record)
    return event


def test_fifo_partial_batch_stops_at_the_first_failure_and_reports_the_rest(
    tmp_path: Path,
) -> None:
    # AWS, with-sqs.html: "If you're using this feature with a FIFO queue, your function should
    # stop processing messages after the first failure and return all failed and unprocessed
    # messages in batchItemFailures. This helps preserve the ordering of messages in your queue."
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": CE_FUNCTION + "cloudevents: {partial_batch_response: true}\n",
            "app.py": FIFO_HANDLER,
        },
    )
    code, out, err = local_invoke(root, fifo_batch(["ok", "ok", "fail", "ok", "ok"]))
    assert code == 0, err
    assert json.loads(out) == {
        "batchItemFailures": [{"itemIdentifier": f"m{i}"} for i in (2, 3, 4)]
    }
    assert (root / "ran.log").read_text().split() == ["m0", "m1", "m2"], "ran past the failure"


def test_standard_queue_partial_batch_still_runs_every_message(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": CE_FUNCTION + "cloudevents: {partial_batch_response: true}\n",
            "app.py": FIFO_HANDLER,
        },
    )
    event = fifo_batch(["ok", "fail", "ok"])
    for record in event["Records"]:
        record["eventSourceARN"] = "arn:aws:sqs:us-east-2:123456789012:my-queue"
        del record["attributes"]["MessageGroupId"]
    code, out, err = local_invoke(root, event)
    assert code == 0, err
    assert json.loads(out) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert (root / "ran.log").read_text().split() == ["m0", "m1", "m2"]


def bad_request() -> dict[str, Any]:
    """AWS's documented function URL event carrying a binary-mode CloudEvent with a bad time."""
    event = sample("function_url.json")
    event["headers"] = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "t",
        "ce-time": "yesterday",
    }
    event.update(body="", isBase64Encoded=False)
    return event


HTTP_HANDLER = "def handler(cloud_event, context):\n    open('handler.ran', 'w').close()\n"


def test_a_malformed_http_cloudevent_answers_400_and_is_logged(tmp_path: Path) -> None:
    root = write_files(tmp_path / "fn", {"sor.yml": CE_FUNCTION, "app.py": HTTP_HANDLER})
    code, out, err = local_invoke(root, bad_request())
    assert code == 0, err  # the invocation succeeded: its answer is the 400
    response = json.loads(out)
    assert response["statusCode"] == 400, response
    assert response["headers"]["content-type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["attribute"] == "time"
    assert problem["reason"] == "attribute 'time' is not RFC 3339: 'yesterday'"
    assert any("answered HTTP 400" in line and "'time'" in line for line in err), err
    assert not (root / "handler.ran").exists()


def test_malformed_fail_restores_the_failed_invocation(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {"sor.yml": CE_FUNCTION + "cloudevents: {malformed: fail}\n", "app.py": HTTP_HANDLER},
    )
    code, out, err = local_invoke(root, bad_request())
    assert code == 1, (code, out, err)
    error = json.loads(out)
    assert error["errorType"] == "Sor.EventMappingError", error
    assert "'time' is not RFC 3339" in error["errorMessage"]
    assert not (root / "handler.ran").exists()


def test_an_unknown_malformed_setting_is_a_config_error(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {"sor.yml": CE_FUNCTION + "cloudevents: {malformed: ignore}\n", "app.py": HTTP_HANDLER},
    )
    code, out, err = local_invoke(root, bad_request())
    assert code == 2, (code, out, err)
    assert any("cloudevents.malformed" in line for line in err), err


def sor_config(root: Path) -> list[str]:
    """``sor config ROOT`` run as a real process: its output lines."""
    import sys

    from sor.process.exchange import run

    argv = [sys.executable, "-m", "sor", "config", str(root)]
    layer = root.parent / "no-layer"  # no layer file
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root.parent), "SOR_LAYER_DIR": str(layer)}
    done = run(argv, env=env, input=b"", timeout=30, max_output=1 << 20)
    assert done.returncode == 0, done.stderr_tail
    return done.stdout.decode().splitlines()


def test_sor_config_shows_the_malformed_setting_and_its_origin(tmp_path: Path) -> None:
    root = write_files(tmp_path / "fn", {"sor.yml": CE_FUNCTION})
    (line,) = [t for t in sor_config(root) if t.strip().startswith("malformed:")]
    assert "malformed: respond" in line and "# default" in line, line
    (root / "sor.yml").write_text(CE_FUNCTION + "cloudevents: {malformed: fail}\n")
    (line,) = [t for t in sor_config(root) if t.strip().startswith("malformed:")]
    assert "malformed: fail" in line and "sor.yml:3:" in line, line

"""End to end, as a user runs it: ``python -m sor local invoke DIR --event FILE [--env K=V]``.

Every test starts sor as a real process on a real function folder (Python, sh and Node
middlewares, Python and Node handlers) and looks only at what a user sees: the exit status, the
payload on stdout, the logs on stderr, and the files the function's code leaves behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import write_files

from sor.process.exchange import run

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# The handler notes that it ran and gives back the event, with its own step added to the trail.
PY_HANDLER = """\
import json, pathlib

def handler(event, context):
    pathlib.Path("handler.ran").write_text(json.dumps(event))
    if isinstance(event, dict):
        event = {**event, "trail": event.get("trail", []) + ["handler"]}
    return event
"""
JS_HANDLER = """\
const fs = require('fs');
exports.handler = async (event, context) => {
  fs.writeFileSync('handler.ran', JSON.stringify(event));
  return { ...event, trail: [...(event.trail || []), 'node-handler'], rid: context.awsRequestId };
};
"""
# Three middlewares, one per language; each notes `NAME:HOOK` in calls.log next to the function.
MW_PY = """\
#!/usr/bin/env python3
import json, pathlib, sys
hook = sys.argv[1]
with open(pathlib.Path(__file__).resolve().parent.parent / "calls.log", "a") as log:
    log.write(f"a:{hook}\\n")
payload = json.load(sys.stdin)
if isinstance(payload, dict) and hook in ("before", "after"):
    payload["trail"] = payload.get("trail", []) + [f"a:{hook}"]
    print(json.dumps(payload))
"""
MW_SH = """\
#!/bin/sh
cat > /dev/null
echo "b:$1" >> "$(dirname "$0")/../calls.log"
"""
MW_JS = """\
#!/usr/bin/env node
const fs = require('fs');
const path = require('path');
const hook = process.argv[2];
fs.appendFileSync(path.join(__dirname, '..', 'calls.log'), `c:${hook}\\n`);
const payload = JSON.parse(fs.readFileSync(0, 'utf8'));
if (hook !== 'error') {
  payload.trail = [...(payload.trail || []), `c:${hook}`];
  process.stdout.write(JSON.stringify(payload));
}
"""
THREE = """\
version: 1
runtime: {language: python, handler: app.handler}
middlewares:
  - {name: a, path: ./mw/a.py}
  - {name: b, path: ./mw/b.sh}
  - {name: c, path: ./mw/c.js}
"""


def sor_local_invoke(
    root: Path, event: Any, *env: str, timeout: float = 10.0
) -> tuple[int | None, str, str]:
    """Run sor as a user runs it: exit status, stdout, stderr."""
    event_file = root.parent / "event.json"
    event_file.write_text(json.dumps(event))
    layer = root.parent / "empty-layer"  # no layer: nothing but the function and sor itself
    layer.mkdir(exist_ok=True)
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root.parent),
        "SOR_LAYER_DIR": str(layer),
    }
    argv = [sys.executable, "-m", "sor", "local", "invoke", str(root), "--event", str(event_file)]
    argv += ["--timeout", str(timeout)]
    for item in env:
        argv += ["--env", item]
    done = run(argv, env=child_env, input=b"", timeout=timeout + 30, max_output=8 << 20)
    assert not done.timed_out, f"sor local invoke hung: {done.stderr_tail}"
    return done.returncode, done.stdout.decode(), "\n".join(done.stderr_tail)


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def three(tmp_path: Path) -> Path:
    root = tmp_path / "fn"
    files = {
        "sor.yml": THREE,
        "app.py": PY_HANDLER,
        "mw/a.py": MW_PY,
        "mw/b.sh": MW_SH,
        "mw/c.js": MW_JS,
    }
    return write_files(root, files, executable=["mw/a.py", "mw/b.sh", "mw/c.js"])


@needs_node
def test_three_middlewares_in_three_languages_run_in_declared_order(three: Path) -> None:
    code, out, err = sor_local_invoke(three, {"trail": []})
    assert code == 0, err
    onion = ["a:before", "b:before", "c:before", "c:after", "b:after", "a:after"]
    assert calls(three) == onion
    # b (sh) leaves the payload as it is: empty stdout
    assert json.loads(out) == {"trail": ["a:before", "c:before", "handler", "c:after", "a:after"]}


@needs_node
def test_slsmiddlewares_reorders_and_keeps_declared_settings(three: Path) -> None:
    code, out, err = sor_local_invoke(three, {}, "SLSMIDDLEWARES=b,a")
    assert code == 0, err
    assert calls(three) == ["b:before", "a:before", "a:after", "b:after"]
    assert json.loads(out) == {"trail": ["a:before", "handler", "a:after"]}


@needs_node
def test_empty_sor_middlewares_runs_none_and_wins_over_slsmiddlewares(three: Path) -> None:
    code, out, err = sor_local_invoke(three, {}, "SOR_MIDDLEWARES=", "SLSMIDDLEWARES=a,b,c")
    assert code == 0, err
    assert calls(three) == []
    assert json.loads(out) == {"trail": ["handler"]}


def test_a_middleware_name_escaping_its_folder_is_refused(three: Path) -> None:
    code, out, err = sor_local_invoke(three, {}, "SOR_MIDDLEWARES=../x")
    assert code == 2, (code, out, err)
    assert "../x" in err and "SOR_MIDDLEWARES" in err, err
    assert out == ""
    assert calls(three) == [] and not (three / "handler.ran").exists(), "something ran"


def test_shipped_warmup_answers_a_ping_without_the_handler(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": "version: 1\nruntime: {handler: app.handler}\n"
            "middlewares:\n  - {name: warmup, hooks: [before]}\n",
            "app.py": PY_HANDLER,
        },
    )
    assert not (root / "middlewares").exists()  # found in sor's own middlewares/, with no path
    code, out, err = sor_local_invoke(root, {"source": "serverless-plugin-warmup"})
    assert code == 0, err
    assert json.loads(out) == {"warmup": True}
    assert not (root / "handler.ran").exists(), "the warm-up ping reached the handler"
    code, out, err = sor_local_invoke(root, {"source": "aws.events"})
    assert code == 0, err
    assert json.loads(out) == {"source": "aws.events", "trail": ["handler"]}


SQS_HANDLER = """\
def handler(cloud_event, context):
    data = cloud_event.get_data()
    assert cloud_event.get_type() == "com.amazonaws.sqs.message", cloud_event.get_type()
    if data["fail"]:
        raise ValueError(f"record {data['n']} failed")
    return None
"""


def sqs_batch(failing: set[int]) -> dict[str, Any]:
    arn = "arn:aws:sqs:us-east-2:123456789012:jobs"
    return {
        "Records": [
            {
                "messageId": f"msg-{n:02d}",
                "receiptHandle": f"handle-{n}",
                "body": json.dumps({"n": n, "fail": n in failing}),
                "attributes": {"SentTimestamp": "1545082649183", "ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-2",
            }
            for n in range(10)
        ]
    }


def test_cloudevent_signature_with_a_partial_sqs_batch_response(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": "version: 1\nruntime: {handler: app.handler, signature: cloudevent}\n"
            "cloudevents: {partial_batch_response: true}\n",
            "app.py": SQS_HANDLER,
        },
    )
    code, out, err = sor_local_invoke(root, sqs_batch({2, 5, 9}))
    assert code == 0, err
    assert json.loads(out) == {
        "batchItemFailures": [{"itemIdentifier": f"msg-{n:02d}"} for n in (2, 5, 9)]
    }
    code, out, err = sor_local_invoke(root, sqs_batch(set()))
    assert code == 0, err
    assert json.loads(out) == {"batchItemFailures": []}
    # without partial_batch_response, one failed record fails the whole batch
    (root / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.handler, signature: cloudevent}\n"
    )
    code, out, err = sor_local_invoke(root, sqs_batch({5}))
    assert code == 1, (code, out, err)
    assert json.loads(out)["errorMessage"] == "record 5 failed", out


@needs_node
def test_node_handler(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {"sor.yml": "version: 1\nruntime: {language: node, handler: app.handler}\n"},
    )
    write_files(root, {"app.js": JS_HANDLER})
    code, out, err = sor_local_invoke(root, {"name": "sor"})
    assert code == 0, err
    answer = json.loads(out)
    assert answer["name"] == "sor" and answer["trail"] == ["node-handler"], answer
    assert len(answer["rid"]) == 36, answer


def test_config_error_exits_2_with_file_line_col(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": "version: 1\nruntime:\n  handler: app.handler\n  signatur: cloudevent\n",
            "app.py": PY_HANDLER,
        },
    )
    code, out, err = sor_local_invoke(root, {})
    assert code == 2, (code, out, err)
    assert f"{root / 'sor.yml'}:4:3" in err, err
    assert "runtime.signatur" in err and "did you mean 'signature'" in err, err
    assert not (root / "handler.ran").exists()


@needs_node
@pytest.mark.parametrize("language", ["python", "node"])
def test_debug_proxy_with_debugging_off_never_reaches_the_handler(
    tmp_path: Path, language: str
) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": f"version: 1\nruntime: {{language: {language}, handler: app.handler}}\n",
            "app.py": PY_HANDLER,
            "app.js": JS_HANDLER,
        },
    )
    code, out, err = sor_local_invoke(root, {"_debugProxy": "127.0.0.1:9229", "x": 1})
    assert code == 0, err
    assert "_debugProxy" not in out
    assert json.loads((root / "handler.ran").read_text()) == {"x": 1}
    assert "remote debugging is off" in err, err


def test_a_partial_batch_past_its_graceful_timeout_reports_the_records_not_run(
    tmp_path: Path,
) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "sor.yml": "version: 1\nruntime: {handler: app.handler, signature: cloudevent}\n"
            "cloudevents: {partial_batch_response: true}\ntimeouts: {grace: 300ms}\n",
            "app.py": "import time\n\ndef handler(cloud_event, context):\n"
            "    n = cloud_event.get_data()['n']\n"
            "    with open('ran.log', 'a') as f:\n        f.write(f'{n}\\n')\n"
            "    if n == 1:\n        time.sleep(30)\n",
        },
    )
    event = sqs_batch(set())
    event["Records"] = event["Records"][:5]
    code, out, err = sor_local_invoke(root, event, timeout=2.0)
    assert code == 0, err
    assert json.loads(out) == {
        "batchItemFailures": [{"itemIdentifier": f"msg-{n:02d}"} for n in (1, 2, 3, 4)]
    }
    assert (root / "ran.log").read_text().split() == ["0", "1"], "records ran past the deadline"
    assert "restarting" not in err, err

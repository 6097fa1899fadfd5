"""Cost of mapping a Lambda event to CloudEvents, next to ``json.loads`` of the same event.

Standalone: ``.venv/bin/python bench/events_bench.py [--n 2000]``. For each sample event in
tests/data/events (plus a binary-mode CloudEvent over HTTP and a declared mapping) it prints the
p50 of ``json.loads(text)`` and of the mapping alone (``to_batch(json.loads(text))`` less the
parse), in microseconds, and their ratio.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sor.config.model import CloudEventsSettings
from sor.events.batch import to_batch

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "events"
ORDERS = {
    "name": "orders",
    "match": {"$.source": "com.example.orders", "$.detail.orderId": {"exists": True}},
    "attributes": {
        "id": "$.id",
        "source": "urn:example:orders",
        "type": "com.example.{$.detail-type}",
        "time": "$.time",
        "extensions": {"tenant": "$.detail.tenant"},
    },
    "data": "$.detail",
}


def cases() -> list[tuple[str, Any, CloudEventsSettings]]:
    plain = CloudEventsSettings(partial_batch_response=True)
    out = []
    for path in sorted(DATA.glob("*.json")):
        doc = json.loads(path.read_text())
        if "event" in doc:
            out.append((path.stem, doc["event"], plain))
    url = json.loads((DATA / "function_url.json").read_text())["event"]
    binary = copy.deepcopy(url)
    binary["headers"] = {
        "ce-specversion": "1.0",
        "ce-id": "ord-1",
        "ce-source": "/shop/orders",
        "ce-type": "com.example.order.placed",
        "ce-time": "2024-05-01T12:00:00Z",
        "content-type": "application/json",
    }
    binary["body"] = json.dumps({"order": 42, "items": [1, 2, 3]})
    out.append(("http binary-mode CE", binary, plain))
    order = json.loads((DATA / "eventbridge_ec2.json").read_text())["event"]
    order.update(source="com.example.orders", detail={"orderId": "42", "tenant": "acme"})
    out.append(("declared mapping", order, CloudEventsSettings(mappings=(ORDERS,))))
    return out


def p50_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="iterations per case")
    args = parser.parse_args()
    print(f"{'source':<34} {'json.loads p50':>15} {'mapping p50':>13} {'ratio':>7}")
    for name, event, settings in cases():
        text = json.dumps(event)
        to_batch(json.loads(text), settings)  # warm: compile mappings, first imports
        loads = p50_us(lambda text=text: json.loads(text), args.n)
        # Map a fresh parse each time, as the runtime does; subtract the parse to isolate mapping.
        both = p50_us(lambda text=text, s=settings: to_batch(json.loads(text), s), args.n)
        mapping = max(both - loads, 0.0)
        print(f"{name:<34} {loads:>12.1f} us {mapping:>10.1f} us {mapping / loads:>6.2f}x")


if __name__ == "__main__":
    main()

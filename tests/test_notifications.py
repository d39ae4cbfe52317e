"""What reaches the pager, and when: a real Alertmanager with alerts/alertmanager.yml
(as shipped, and as the local stack runs it) delivers a page, then its resolution
within a minute; the local stack's console lines say what fired and what resolved."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime, timedelta, UTC
from pathlib import Path

import yaml

from nautilus_probe.observe import Receiver, alertmanager_config, notification_line, subject
from nautilus_testkit import wait_for
from nautilus_testkit.live import start_alertmanager

PAGE = {"alertname": "EngineAvailabilityBudgetBurn", "engine": "risk", "severity": "page"}


def post(am: str, labels: dict[str, str], starts: datetime, ends: datetime | None = None) -> None:
    """An alert as Prometheus sends it (a resolved one with its end)."""
    alert = {"labels": labels, "annotations": {"summary": "risk is burning its availability "
                                                          "error budget (fast: over 1h or 6h)."},
             "startsAt": starts.isoformat()}
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    request = urllib.request.Request(f"{am}/api/v2/alerts", data=json.dumps([alert]).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def test_a_resolution_reaches_the_pager_within_a_minute(tmp_path: Path) -> None:
    """The shipped config and the local stack's, each in a real Alertmanager: a page
    whose group_wait has passed is delivered at once; its resolution, posted right
    after, waits for the group's next tick (group_interval): under a minute shipped
    (5 min before), 5 s locally."""
    started = {}
    for name, local in (("shipped", False), ("local", True)):
        lines: list[tuple[float, str]] = []
        receiver = Receiver(lambda line, lines=lines: lines.append((time.monotonic(), line)))
        (tmp_path / name).mkdir()
        config = tmp_path / name / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(receiver.port, local=local)))
        proc, url = start_alertmanager(tmp_path / name, config)
        started[name] = (proc, url, receiver, lines)
    try:
        fired = datetime.now(UTC) - timedelta(minutes=3)  # its group_wait long past
        for _, url, _, _ in started.values():
            post(url, PAGE, fired)
        for _, _, _, lines in started.values():
            wait_for(lambda lines=lines: lines, 15)
            assert lines[0][1].startswith("PAGER firing: EngineAvailabilityBudgetBurn risk — "
                                          "risk is burning"), lines
        resolved_at = {}
        for name, (_, url, _, _) in started.items():
            post(url, PAGE, fired, datetime.now(UTC))
            resolved_at[name] = time.monotonic()
        for name, (_, _, _, lines) in started.items():
            wait_for(lambda lines=lines: len(lines) == 2, 75, interval=0.2)
            took = lines[1][0] - resolved_at[name]
            print(f"{name}: the resolution reached the pager {took:.1f} s after Prometheus "
                  "sent it")
            assert took <= (62 if name == "shipped" else 7), (name, took)
            # What resolved and for how long, not the firing summary again.
            assert lines[1][1].startswith("PAGER resolved: EngineAvailabilityBudgetBurn risk "
                                          "— no longer firing (it fired at "), lines
            assert re.search(r", for 3 min \d+ s\)$", lines[1][1]), lines
            assert "burning" not in lines[1][1]
    finally:
        for proc, _, receiver, _ in started.values():
            proc.terminate()
            proc.wait(20)
            receiver.close()


def test_console_lines_say_what_fired_and_what_resolved() -> None:
    capacity = {"alertname": "CapacityValidationFailed", "severity": "ticket", "scope": "risk",
                "target": "throughput_ops_per_second", "job": "nautilus-capacity"}
    assert subject(capacity) == "risk throughput_ops_per_second"
    assert notification_line("ticket", {"status": "firing", "labels": capacity, "annotations": {
        "summary": "The last load test missed a capacity target."}}) == (
        "TICKET firing: CapacityValidationFailed risk throughput_ops_per_second — "
        "The last load test missed a capacity target.")
    line = notification_line("pager", {
        "status": "resolved", "labels": PAGE, "annotations": {"summary": "risk is burning"},
        "startsAt": "2026-12-07T14:28:07.123456789Z", "endsAt": "2026-12-07T14:37:43.5Z"})
    fired = time.strftime("%H:%M:%S", time.localtime(
        datetime(2026, 12, 7, 14, 28, 7, tzinfo=UTC).timestamp()))
    assert line == ("PAGER resolved: EngineAvailabilityBudgetBurn risk — no longer firing "
                    f"(it fired at {fired}, for 9 min 36 s)")
    loop = {"alertname": "ProbeLoopRestarting", "instance": "exporter:9478", "loop": "websocket"}
    assert subject(loop) == "exporter:9478 websocket"
    assert subject({"alertname": "WebSocketConnectFailing",
                    "endpoint": "ws://127.0.0.1:8080/ws"}) == "ws://127.0.0.1:8080/ws"

"""A small client of Prometheus's HTTP query API, the one the review, the dashboard
previews and the live tests read Prometheus through (instant and range queries)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


class QueryError(Exception):
    """Prometheus could not be reached, or refused the query (the message says which)."""


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, **params: Any) -> Any:
        """The `data` of an API answer; QueryError on anything else."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with Prometheus's reason
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise QueryError(f"{url}: {reason}") from None
        except (OSError, ValueError) as exc:
            raise QueryError(f"{url}: {exc}") from None
        if body.get("status") != "success":
            raise QueryError(f"{url}: {body.get('error')}")
        return body["data"]

    def instant(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (at `at`, or now)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        result: list[dict[str, Any]] = self.get("/api/v1/query", **params)["result"]
        return result

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query_range", query=expr, start=start,
                                                end=end, step=step)["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds now, pending and firing."""
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts")["alerts"]
        return alerts

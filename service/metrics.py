"""Prometheus metrics at ``GET /metrics``.

- ``triage_http_requests_total{method,route,status}``,
  ``triage_http_request_duration_seconds{method,route}`` (histogram)
- ``triage_suggestions_total{label}`` (labels decided),
  ``triage_suggestion_outcomes_total{outcome}``
- ``triage_model_info{version}`` (1 for the version this worker serves),
  ``triage_model_reloads_total{result}``
- ``triage_reviews_total``, ``triage_review_agreement_ratio`` (current reviews whose labels
  equal the suggested ones; read from the database at scrape time, so it is right across
  workers and instances), ``triage_reviews_current``

With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``service.server.serve``)
makes counters and histograms add up over all workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _LiveCollector:
    """Values computed at scrape time: the model version, review agreement."""

    def __init__(
        self, version: Callable[[], str | None], agreement: Callable[[], tuple[int, int]]
    ) -> None:
        self._version = version
        self._agreement = agreement

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "triage_model_info", "The model version this worker serves", labels=["version", "pid"]
        )
        version = self._version()
        if version:
            info.add_metric([version, str(os.getpid())], 1.0)
        yield info
        try:
            total, agreed = self._agreement()
        except Exception:
            logger.warning("cannot read review agreement for /metrics", exc_info=True)
            return
        yield GaugeMetricFamily(
            "triage_reviews_current", "Requests with a current review", value=total
        )
        yield GaugeMetricFamily(
            "triage_review_agreement_ratio",
            "Share of current reviews whose labels equal the suggested labels",
            value=(agreed / total) if total else float("nan"),
        )

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """The metric objects of one app (a registry per app keeps tests independent)."""

    def __init__(
        self, version: Callable[[], str | None], agreement: Callable[[], tuple[int, int]]
    ) -> None:
        disable_created_metrics()  # the *_created series only add noise to every scrape
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        kwargs: dict[str, Any] = {"registry": self.registry}
        self.http_requests = Counter(
            "triage_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            **kwargs,
        )
        self.http_latency = Histogram(
            "triage_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_BUCKETS,
            **kwargs,
        )
        self.suggested_labels = Counter(
            "triage_suggestions", "Labels decided in suggestions", ["label"], **kwargs
        )
        self.suggested_outcomes = Counter(
            "triage_suggestion_outcomes", "Outcomes of suggestions", ["outcome"], **kwargs
        )
        self.reloads = Counter(
            "triage_model_reloads", "Model reloads by result", ["result"], **kwargs
        )
        self.reviews = Counter("triage_reviews", "Reviews stored", **kwargs)
        self._live = _LiveCollector(version, agreement)
        if not self.multiprocess:
            self.registry.register(self._live)
        # ``labels()`` takes a lock and builds a key on every call; the few label values
        # there are get their child metric looked up once.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, method, route, str(status)).inc()
        self._child(self.http_latency, method, route).observe(seconds)

    def count_suggestion(self, labels: Iterable[str], outcome: str) -> None:
        for label in labels:
            self._child(self.suggested_labels, label).inc()
        self._child(self.suggested_outcomes, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self._live)
        return generate_latest(registry), CONTENT_TYPE_LATEST

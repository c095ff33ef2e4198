"""Prometheus metrics of one server process."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "dispatch_http_requests", "HTTP requests answered.", ("method", "route", "status"), registry=REGISTRY
)
LATENCY = Histogram(
    "dispatch_http_request_duration_seconds",
    "HTTP request latency.",
    ("method", "route"),
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WEBSOCKETS = Gauge("dispatch_websockets_open", "Open websockets by channel kind.", ("kind",), registry=REGISTRY)

FRAMES_DROPPED = Counter(
    "dispatch_ws_frames_dropped", "Location frames dropped for slow sockets.", ("kind",), registry=REGISTRY
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def exposition() -> bytes:
    """The metrics in Prometheus text format."""
    return generate_latest(REGISTRY)

"""Prometheus metrics of a running hub, read from its recorders when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from camhub.hub import Hub

__all__ = ["HubCollector", "serve_metrics"]


class HubCollector(Collector):
    """Per-channel recording state, received bytes and sealed segments, plus spool totals."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        labels = ["device", "channel"]
        recording = GaugeMetricFamily(
            "camhub_channel_recording", "1 while the channel is recording", labels=labels
        )
        received = CounterMetricFamily("camhub_channel_received_bytes", "Media bytes received", labels=labels)
        segments = CounterMetricFamily("camhub_channel_segments", "Segments sealed", labels=labels)
        gap = GaugeMetricFamily(
            "camhub_channel_gap_open", "1 while the channel has an open gap", labels=labels
        )
        for key, recorder in list(self.hub.recorders.items()):
            values = [key.device_id, str(key.channel)]
            recording.add_metric(values, 1.0 if recorder.state.value == "recording" else 0.0)
            received.add_metric(values, float(recorder.bytes_in))
            segments.add_metric(values, float(recorder.segments))
            gap.add_metric(values, 1.0 if self.hub.sink.board.get(key, {}).get("gap") else 0.0)
        yield from (recording, received, segments, gap)


def serve_metrics(hub: Hub, address: str, port: int) -> Callable[[], None]:
    """Serve the hub's metrics over HTTP; returns a function that stops the server."""
    registry = CollectorRegistry()
    registry.register(HubCollector(hub))
    server, thread = start_http_server(port, addr=address, registry=registry)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop

"""Prometheus metrics of a running hub, read from its recorders when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camhub.uploader import SPOOL_ALERT, UNREACHABLE_ALERT

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from camhub.hub import Hub
    from camhub.uploader import UploadStatus

__all__ = ["HubCollector", "serve_metrics"]


class HubCollector(Collector):
    """Per-channel recording state, received bytes and sealed segments, plus the upload backlog."""

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
        if self.hub.uploader is not None:
            yield from _upload_metrics(self.hub.uploader.status())


def _upload_metrics(status: UploadStatus) -> Iterator[Metric]:
    """The store-and-forward backlog and the uploader's counters (see :mod:`camhub.uploader`)."""
    for name, doc, value in (
        ("camhub_upload_backlog_segments", "Segments waiting for the central store", status.backlog_count),
        ("camhub_upload_backlog_bytes", "Bytes waiting for the central store", status.backlog_bytes),
        (
            "camhub_upload_backlog_oldest_age_seconds",
            "Age of the oldest segment waiting for the central store",
            status.oldest_age,
        ),
        ("camhub_upload_in_flight", "Uploads under way", status.in_flight),
        ("camhub_upload_set_aside", "Segments set aside until the hub restarts", status.set_aside),
        (
            "camhub_central_store_reachable",
            "0 while every upload to the central store fails",
            status.reachable,
        ),
    ):
        yield GaugeMetricFamily(name, doc, value=float(value))
    yield CounterMetricFamily("camhub_uploaded_segments", "Segments sent and verified", value=status.uploaded)
    yield CounterMetricFamily("camhub_uploaded_bytes", "Bytes sent and verified", value=status.uploaded_bytes)
    yield CounterMetricFamily("camhub_upload_failures", "Failed upload attempts", value=status.failures)
    alert = GaugeMetricFamily("camhub_upload_alert", "1 while the upload alert is raised", labels=["alert"])
    for name in (SPOOL_ALERT, UNREACHABLE_ALERT):
        alert.add_metric([name], 1.0 if name in status.alerts else 0.0)
    yield alert


def serve_metrics(hub: Hub, address: str, port: int) -> Callable[[], None]:
    """Serve the hub's metrics over HTTP; returns a function that stops the server."""
    registry = CollectorRegistry()
    registry.register(HubCollector(hub))
    server, thread = start_http_server(port, addr=address, registry=registry)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop

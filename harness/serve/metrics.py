"""Prometheus metrics of one server (`GET /metrics`), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (re-exported for the app)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from harness.measure.timing import RequestTiming

# Seconds: CPU models reach tens of seconds to the first token, GPU ones a few milliseconds.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.5)


class ServeMetrics:
    def __init__(self, model: str):
        self.model = model
        self.registry = CollectorRegistry()
        own = {"registry": self.registry}
        self.requests = Counter("lalm_serve_requests", "Chat completion requests answered, by HTTP status",
                                ["model", "status"], **own)
        self.errors = Counter("lalm_serve_errors", "Requests answered with an error, by HTTP status and error code",
                              ["model", "status", "code"], **own)
        self.prompt_tokens = Counter("lalm_serve_prompt_tokens", "Prompt tokens as reported in usage (estimated)",
                                     ["model"], **own)
        self.output_tokens = Counter("lalm_serve_output_tokens", "Generated tokens", ["model"], **own)
        self.ttft = Histogram("lalm_serve_ttft_seconds", "Server-side time to first token (waveform handed to the "
                              "candidate -> first token)", ["model"], buckets=TTFT_BUCKETS, **own)
        self.tpot = Histogram("lalm_serve_tpot_seconds", "Server-side time per output token after the first, per request",
                              ["model"], buckets=TPOT_BUCKETS, **own)
        self.e2e = Histogram("lalm_serve_e2e_seconds", "Server-side generation time per request", ["model"],
                             buckets=TTFT_BUCKETS, **own)
        self.queue = Histogram("lalm_serve_queue_seconds", "Time a request waited for the model (requests are "
                               "serialized)", ["model"], buckets=TTFT_BUCKETS, **own)
        self.in_flight = Gauge("lalm_serve_requests_in_flight", "Requests waiting for or using the model", ["model"], **own)

    def answered(self, status: int) -> None:
        self.requests.labels(self.model, str(status)).inc()

    def failed(self, status: int, code: str) -> None:
        self.answered(status)
        self.errors.labels(self.model, str(status), code).inc()

    def completed(self, timing: RequestTiming, queue_s: float, prompt_tokens: int) -> None:
        self.answered(200)
        self.prompt_tokens.labels(self.model).inc(prompt_tokens)
        self.output_tokens.labels(self.model).inc(timing.n_tokens)
        if timing.ttft_s is not None:
            self.ttft.labels(self.model).observe(timing.ttft_s)
        if timing.tpot_s is not None:
            self.tpot.labels(self.model).observe(timing.tpot_s)
        self.e2e.labels(self.model).observe(timing.e2e_s)
        self.queue.labels(self.model).observe(queue_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)

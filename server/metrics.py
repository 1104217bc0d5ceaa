"""Prometheus metrics (`wsd_` prefix, `model_name` label), in a registry of our own.

vLLM's in-process logger unregisters every `vllm` collector when a second engine starts, so
we do not rely on its metrics and export what operators need ourselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from server import __version__
from wsd_engine.config import AppConfig, Role
from wsd_engine.request import WSDInfo

# From milliseconds to minutes: the same dashboard reads well on CPU and on GPU.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
)  # fmt: skip
TOKEN_BUCKETS = (0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)


class WSDMetrics:
    """Every metric the server exports, registered in one registry."""

    def __init__(self, config: AppConfig) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        model = ["model_name"]
        self.switch_latency = Histogram(
            "wsd_switch_latency_seconds",
            "Switch decision to the first base-model token (the handoff).",
            model, buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.time_to_switch = Histogram(
            "wsd_time_to_switch_seconds",
            "Request start to the switch decision.",
            model, buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.accepted_prefix = Histogram(
            "wsd_accepted_prefix_tokens",
            "Draft tokens kept in the answer (base tokenization).",
            model, buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.wasted = Histogram(
            "wsd_pilot_tokens_wasted",
            "Pilot tokens drafted beyond the kept prefix.",
            model, buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.switch_reasons = Counter(
            "wsd_switch_reason", "Switches by reason (threshold, draft_end, draft_limit, none).",
            [*model, "reason"], registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "wsd_time_to_first_token_seconds", "Request start to the first answer token.",
            model, buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.itl = Histogram(
            "wsd_inter_token_latency_seconds", "Time between streamed answer pieces.",
            model, buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "wsd_e2e_request_latency_seconds", "Request start to its last token.",
            model, buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.running = Gauge(
            "wsd_requests_running", "Requests producing output.", model, registry=r
        )
        self.waiting = Gauge(
            "wsd_requests_waiting", "Requests admitted, no output yet.", model, registry=r
        )
        self.prompt_tokens = Counter(
            "wsd_prompt_tokens", "Prompt tokens by engine role.", [*model, "role"], registry=r
        )
        self.generation_tokens = Counter(
            "wsd_generation_tokens", "Generated tokens by engine role.", [*model, "role"],
            registry=r,
        )  # fmt: skip
        self.finished = Counter(
            "wsd_requests_finished", "Finished choices by finish reason.",
            [*model, "finish_reason"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "wsd_request_errors", "Failed requests by HTTP status.", [*model, "status"],
            registry=r,
        )  # fmt: skip
        self.info = Info("wsd_build", "Models and method settings.", registry=r)
        self.info.info(
            {
                "wsd_model": config.wsd.served_model_name,
                "pilot_model": config.pilot.served_model_name,
                "base_model": config.base.served_model_name,
                "threshold": str(config.wsd.threshold),
                "window": str(config.wsd.window),
                "draft_max_tokens": str(config.wsd.draft_max_tokens),
                "version": __version__,
            }
        )

    def count_tokens(self, model_name: str, role: Role, prompt: int, generated: int) -> None:
        """Tokens one engine handled for one choice."""
        self.prompt_tokens.labels(model_name, role.value).inc(prompt)
        self.generation_tokens.labels(model_name, role.value).inc(generated)

    def record_switch(self, model_name: str, info: WSDInfo) -> None:
        """Where and when one WSD answer switched."""
        self.switch_reasons.labels(model_name, info.reason or "none").inc()
        self.accepted_prefix.labels(model_name).observe(info.prefix_tokens)
        self.wasted.labels(model_name).observe(info.pilot_tokens_wasted)
        if info.time_to_switch_s is not None:
            self.time_to_switch.labels(model_name).observe(info.time_to_switch_s)
        if info.switch_latency_s is not None:
            self.switch_latency.labels(model_name).observe(info.switch_latency_s)

    def count_error(self, model_name: str, status: int) -> None:
        """A failed request, by the model it named and its HTTP status."""
        self.errors.labels(model_name, str(status)).inc()

    def track(self, model_name: str) -> RequestTimer:
        """Start timing one choice of one request."""
        self.waiting.labels(model_name).inc()
        return RequestTimer(self, model_name)


@dataclass
class RequestTimer:
    """Timings of one choice, observed into the metrics as they happen."""

    metrics: WSDMetrics
    model_name: str
    started: float = field(default_factory=time.monotonic)
    last_piece: float | None = None
    is_done: bool = False

    def piece(self) -> None:
        """An answer piece was produced."""
        now = time.monotonic()
        m = self.metrics
        if self.last_piece is None:
            m.ttft.labels(self.model_name).observe(now - self.started)
            m.waiting.labels(self.model_name).dec()
            m.running.labels(self.model_name).inc()
        else:
            m.itl.labels(self.model_name).observe(now - self.last_piece)
        self.last_piece = now

    def done(self, finish_reason: str | None) -> None:
        """The choice ended (finish_reason None: it failed or was cancelled)."""
        if self.is_done:
            return
        self.is_done = True
        m = self.metrics
        gauge = m.waiting if self.last_piece is None else m.running
        gauge.labels(self.model_name).dec()
        if finish_reason is not None:
            m.e2e.labels(self.model_name).observe(time.monotonic() - self.started)
            m.finished.labels(self.model_name, finish_reason).inc()

"""Prometheus metrics (`wsd_` prefix, `model_name` label), in a registry of our own.

vLLM's in-process logger unregisters every `vllm` collector when a second engine starts, so
we do not rely on its metrics and export what operators need ourselves.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from server import __version__
from server.settings import AppConfig
from wsd_engine.config import Role
from wsd_engine.timeline import StreamTimeline

if TYPE_CHECKING:
    from server.choices import ChoiceEnd
    from server.responses import WSDInfo
    from wsd_engine.engines.engine import Engine

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

        def latency(name: str, documentation: str) -> Histogram:
            """A per-model latency histogram, from 1 ms to 5 minutes."""
            return Histogram(name, documentation, model, buckets=LATENCY_BUCKETS_S, registry=r)

        self.switch_latency = latency(
            "wsd_switch_latency_seconds",
            "The stream's stall at the handoff, per WSD answer: the longer of the gaps into the "
            "first and into the second chunk of base-model text, measured where the chunks are "
            "sent.",
        )
        self.decision_lag = latency(
            "wsd_switch_decision_lag_seconds",
            "From the pilot producing the last token of the window that passed to the switch "
            "decision.",
        )
        self.handoff = latency(
            "wsd_switch_handoff_seconds",
            "From the switch decision to the first base-model token being available.",
        )
        self.draft_lag = latency(
            "wsd_draft_lag_seconds",
            "Per WSD answer, the median time from the pilot producing a draft token to its "
            "text being sent (the price of checking before sending).",
        )
        self.max_stream_gap = latency(
            "wsd_max_stream_gap_seconds",
            "Per answer, the longest gap between two consecutive chunks of answer text.",
        )
        self.continuation_itl = latency(
            "wsd_continuation_inter_token_latency_seconds",
            "Gaps between consecutive chunks of base-model text in WSD answers after the "
            "handoff's two: the base model's pace inside WSD.",
        )
        self.time_to_switch = latency(
            "wsd_time_to_switch_seconds",
            "Request start to the switch decision.",
        )
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
        self.ttft = latency(
            "wsd_time_to_first_token_seconds",
            "Request start to the first answer token.",
        )
        self.itl = latency(
            "wsd_inter_token_latency_seconds",
            "Gaps between consecutive chunks of answer text, measured where they are sent.",
        )
        self.e2e = latency(
            "wsd_e2e_request_latency_seconds",
            "Request start to its last token.",
        )
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
        self.admission_limit = Gauge(
            "wsd_max_concurrent_requests",
            "The bound on completion requests running or queued at once (more get 429).",
            registry=r,
        )
        self.in_flight = Gauge(
            "wsd_requests_in_flight",
            "Completion requests admitted and not yet ended (running or queued).",
            registry=r,
        )
        self.rejected = Counter(
            "wsd_requests_rejected",
            "Completion requests refused before any work: 'overloaded' (429, at the bound) or "
            "'unavailable' (503, draining or an engine died).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.engine_requests = Gauge(
            "wsd_engine_requests",
            "Requests inside each engine (vLLM's unfinished requests: running or waiting).",
            ["role"], registry=r,
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

    def watch_engines(self, pilot: Engine, base: Engine) -> None:
        """Read each engine's request count at every scrape."""
        self.engine_requests.labels(Role.PILOT.value).set_function(pilot.num_unfinished_requests)
        self.engine_requests.labels(Role.BASE.value).set_function(base.num_unfinished_requests)

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
        for histogram, value in (
            (self.switch_latency, info.switch_latency_s),
            (self.decision_lag, info.decision_lag_s),
            (self.handoff, info.handoff_s),
            (self.draft_lag, info.draft_lag_s),
        ):
            if value is not None:
                histogram.labels(model_name).observe(value)

    def count_error(self, model_name: str, status: int) -> None:
        """A failed request, by the model it named and its HTTP status."""
        self.errors.labels(model_name, str(status)).inc()

    def track(self, model_name: str, timeline: StreamTimeline) -> ChoiceTimer:
        """Start timing one choice of one request, from its stream's timeline."""
        self.waiting.labels(model_name).inc()
        return ChoiceTimer(self, model_name, timeline)


class ChoiceTimer:
    """One choice's metrics, read from its stream's timeline as chunks are sent, and from its
    end (the `wsd` object, as the response carries it)."""

    def __init__(self, metrics: WSDMetrics, model_name: str, timeline: StreamTimeline) -> None:
        self.metrics = metrics
        self.model_name = model_name
        self.timeline = timeline
        self.is_done = False

    def sent(self) -> None:
        """The timeline has just recorded a chunk of answer text."""
        timeline = self.timeline
        m, name = self.metrics, self.model_name
        if timeline.last_gap_s is None:  # the first chunk
            if timeline.time_to_first_chunk_s is not None:
                m.ttft.labels(name).observe(timeline.time_to_first_chunk_s)
            m.waiting.labels(name).dec()
            m.running.labels(name).inc()
        else:
            m.itl.labels(name).observe(timeline.last_gap_s)

    def end(self, end: ChoiceEnd, wsd: WSDInfo | None) -> None:
        """The choice is complete: every per-choice metric is recorded."""
        m, name = self.metrics, self.model_name
        timeline = self.timeline
        for role, (prompt, generated) in end.tokens_by_role.items():
            m.count_tokens(name, role, prompt, generated)
        if timeline.max_gap_s is not None:
            m.max_stream_gap.labels(name).observe(timeline.max_gap_s)
        if wsd is not None:
            m.record_switch(name, wsd)
            for gap in timeline.base_pace:
                m.continuation_itl.labels(name).observe(gap)
        self.done(end.finish_reason.value)

    def done(self, finish_reason: str | None) -> None:
        """The choice ended (finish_reason None: it failed or was cancelled)."""
        if self.is_done:
            return
        self.is_done = True
        m = self.metrics
        gauge = m.waiting if self.timeline.last_sent is None else m.running
        gauge.labels(self.model_name).dec()
        if finish_reason is not None:
            m.e2e.labels(self.model_name).observe(time.monotonic() - self.timeline.started)
            m.finished.labels(self.model_name, finish_reason).inc()

"""What answers: a model id at an OpenAI-compatible endpoint, with the request's settings.

By default the three ids of one WSD server (the `wsd` id, the pilot, the base, in the order
its /v1/models lists them); `wsd` at several settings in one run is one target per setting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TargetRole(StrEnum):
    """What a target is, for the metrics and the sweep."""

    WSD = "wsd"
    PILOT = "pilot"
    BASE = "base"
    OTHER = "other"


@dataclass(frozen=True)
class Target:
    """One model id, asked with fixed settings."""

    name: str  # e.g. "wsd@threshold=0.8" or "gemma-3-270m"
    role: TargetRole
    base_url: str
    model: str
    temperature: float = 0.0  # greedy, as the paper
    max_tokens: int = 256
    seed: int | None = None
    wsd: dict[str, Any] = field(default_factory=dict)  # the `wsd` extension sent
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def settings(self) -> dict[str, Any]:
        """The request settings an answer records."""
        settings: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.seed is not None:
            settings["seed"] = self.seed
        if self.wsd:
            settings["wsd"] = dict(self.wsd)
        return settings

    @property
    def key(self) -> str:
        """The target as answers are stored: its name and a digest of what decides its answers
        (a changed setting is a new target, not a mix of old and new answers)."""
        decisive = {"url": self.base_url, "model": self.model, **self.settings}
        digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
        return f"{self.name}#{digest[:10]}"

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The chat request for `messages`."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.wsd:
            body["wsd"] = dict(self.wsd)
        return body


def wsd_targets(
    base_url: str,
    model: str,
    thresholds: Sequence[float],
    windows: Sequence[int],
    **common: Any,
) -> list[Target]:
    """One `wsd` target per setting (the server's default when no value is given)."""
    targets = []
    for threshold in _or_default(thresholds):
        for window in _or_default(windows):
            extension: dict[str, Any] = {}
            if threshold is not None:
                extension["threshold"] = threshold
            if window is not None:
                extension["window"] = window
            suffix = ",".join(f"{key}={value}" for key, value in extension.items())
            name = f"{model}@{suffix}" if suffix else model
            targets.append(Target(name, TargetRole.WSD, base_url, model, wsd=extension, **common))
    return targets


def _or_default(values: Sequence[Any]) -> list[Any]:
    """The values given, or one None: the server's default."""
    return list(values) or [None]

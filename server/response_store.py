"""Stored responses, for `previous_response_id` and `GET /v1/responses/{id}`: bounded in size
and age, in this process only (a deployment of several replicas needs sticky routing for
`previous_response_id`, or turns the store off)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from server.responses_objects import InputItem, ResponseObject


@dataclass
class StoredResponse:
    """A response with what it answered."""

    response: ResponseObject
    input_items: list[InputItem]  # this request's own input, as message items
    history: list[dict[str, str]]  # the chat messages a continuation starts from
    stored_at: float


class ResponseStore:
    """The newest `max_items` responses, each for at most `max_age_s`."""

    def __init__(self, max_items: int, max_age_s: float) -> None:
        self.max_items = max_items
        self.max_age_s = max_age_s
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether responses are kept at all (a size of 0 turns the store off)."""
        return self.max_items > 0

    def put(self, stored: StoredResponse) -> None:
        """Keep a response, dropping the oldest past the bound."""
        if not self.enabled:
            return
        self._items[stored.response.id] = stored
        self._items.move_to_end(stored.response.id)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        """A stored response, unless it was evicted or is too old."""
        self._expire()
        return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        """Forget a response; False if it was not stored."""
        self._expire()
        return self._items.pop(response_id, None) is not None

    def __len__(self) -> int:
        self._expire()
        return len(self._items)

    def _expire(self) -> None:
        deadline = time.monotonic() - self.max_age_s
        while self._items:
            oldest = next(iter(self._items.values()))
            if oldest.stored_at >= deadline:
                return
            self._items.popitem(last=False)

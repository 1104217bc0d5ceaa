"""Prompt templates: chat messages to token ids for the pilot and the base model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jinja2

from wsd_engine.config import PromptTemplate


class MessageRole(StrEnum):
    """Chat roles the templates understand."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Message:
    """One chat message with plain-text content."""

    role: MessageRole
    content: str


class TemplateError(ValueError):
    """Messages cannot be rendered with a template."""


# The official WSD code's template for base (non-chat) models.
PLAIN_ROLE_HEADERS = {
    MessageRole.SYSTEM: "\n\n[System]\n",
    MessageRole.USER: "\n\n[User]\n",
    MessageRole.ASSISTANT: "\n\n[Assistant]\n",
}
PLAIN_STOP_STRINGS = (
    "\n\n[User]",
    "\n\n[System]",
    "\n\n[Assistant]",
    "\n[User]",
    "\n[System]",
    "\n[Assistant]",
    "[User]",
    "[System]",
    "[Assistant]",
)
CHAT_STOP_STRINGS = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>")


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as text and token ids, with the stop strings its template implies."""

    text: str
    token_ids: list[int]
    stop: tuple[str, ...]


def render_plain_text(messages: Sequence[Message]) -> str:
    """The plain [System]/[User]/[Assistant] template, ending with the assistant header."""
    text = "".join(PLAIN_ROLE_HEADERS[m.role] + m.content.strip() for m in messages)
    return text + PLAIN_ROLE_HEADERS[MessageRole.ASSISTANT]


def _with_bos(tokenizer: Any, token_ids: list[int]) -> list[int]:
    bos = tokenizer.bos_token_id
    if bos is None or (token_ids and token_ids[0] == bos):
        return token_ids
    return [bos, *token_ids]


def render_prompt(
    tokenizer: Any, messages: Sequence[Message], template: PromptTemplate
) -> RenderedPrompt:
    """Render messages for one model: its chat template or the plain template, BOS once."""
    if not messages:
        raise TemplateError("messages must not be empty")
    stop: tuple[str, ...]
    if template is PromptTemplate.PLAIN:
        text = render_plain_text(messages)
        stop = PLAIN_STOP_STRINGS
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError(
                "the model has no chat template; configure prompt_template: plain for it"
            )
        chat = [{"role": m.role.value, "content": m.content} for m in messages]
        try:
            text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        except jinja2.TemplateError as exc:  # raised by the template itself (e.g. role order)
            raise TemplateError(f"chat template rejected the messages: {exc}") from exc
        stop = CHAT_STOP_STRINGS
    token_ids = _with_bos(tokenizer, tokenizer.encode(text, add_special_tokens=False))
    return RenderedPrompt(text=text, token_ids=token_ids, stop=stop)

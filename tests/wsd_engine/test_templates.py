import copy

import pytest

from wsd_engine.config import PromptTemplate
from wsd_engine.templates import (
    PLAIN_STOP_STRINGS,
    Message,
    MessageRole,
    TemplateError,
    render_plain_text,
    render_prompt,
)

S, U, A = MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT


def test_plain_template_single_turn():
    text = render_plain_text([Message(U, "  Hi there \n")])
    assert text == "\n\n[User]\nHi there\n\n[Assistant]\n"


def test_plain_template_system_and_multi_turn():
    messages = [
        Message(S, "Be brief."),
        Message(U, "What is 2+2?"),
        Message(A, "4"),
        Message(U, "And 3+3?"),
    ]
    assert render_plain_text(messages) == (
        "\n\n[System]\nBe brief.\n\n[User]\nWhat is 2+2?\n\n[Assistant]\n4"
        "\n\n[User]\nAnd 3+3?\n\n[Assistant]\n"
    )


def test_plain_stop_strings_are_the_official_list():
    assert PLAIN_STOP_STRINGS[:3] == ("\n\n[User]", "\n\n[System]", "\n\n[Assistant]")
    assert set(PLAIN_STOP_STRINGS[6:]) == {"[User]", "[System]", "[Assistant]"}


def test_base_prompt_starts_with_one_bos(base_tokenizer):
    prompt = render_prompt(base_tokenizer, [Message(U, "Hello")], PromptTemplate.PLAIN)
    assert prompt.token_ids[0] == base_tokenizer.bos_token_id
    assert prompt.token_ids.count(base_tokenizer.bos_token_id) == 1
    assert base_tokenizer.decode(prompt.token_ids[1:]) == "\n\n[User]\nHello\n\n[Assistant]\n"


def test_pilot_chat_template_with_system_prompt(pilot_tokenizer):
    messages = [Message(S, "You are terse."), Message(U, "Hi")]
    prompt = render_prompt(pilot_tokenizer, messages, PromptTemplate.CHAT)
    assert prompt.text == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    # the template already starts with SmolLM2's BOS (<|im_start|>): not added twice
    assert prompt.token_ids[0] == pilot_tokenizer.bos_token_id
    assert prompt.token_ids[1] != pilot_tokenizer.bos_token_id
    assert "<|im_end|>" in prompt.stop


def test_pilot_chat_template_multi_turn_default_system(pilot_tokenizer):
    messages = [Message(U, "Hi"), Message(A, "Hello!"), Message(U, "Bye")]
    text = render_prompt(pilot_tokenizer, messages, PromptTemplate.CHAT).text
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith(
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chat_template_missing_is_a_clear_error(base_tokenizer):
    with pytest.raises(TemplateError, match="no chat template"):
        render_prompt(base_tokenizer, [Message(U, "Hi")], PromptTemplate.CHAT)


def test_empty_messages_rejected(pilot_tokenizer):
    with pytest.raises(TemplateError, match="empty"):
        render_prompt(pilot_tokenizer, [], PromptTemplate.CHAT)


def test_a_template_that_refuses_the_messages_is_a_template_error():
    from tests.fakes.tiny_tokenizers import tiny_pilot_tokenizer

    tokenizer = copy.copy(tiny_pilot_tokenizer())
    tokenizer.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    with pytest.raises(TemplateError, match="roles must alternate"):
        render_prompt(tokenizer, [Message(U, "Hi")], PromptTemplate.CHAT)

"""The tiny tokenizers behave like the embedded models' real ones (no prepared model needed)."""

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.fakes.tiny_tokenizers import BYTE_TOKENS, tiny_base_tokenizer, tiny_pilot_tokenizer

TINY = {"pilot": tiny_pilot_tokenizer, "base": tiny_base_tokenizer}
EXAMPLES = int(os.environ.get("WSD_HYPOTHESIS_EXAMPLES", "200"))
HYPOTHESIS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

TEXTS = [
    "Hello world 12345 café 🙂\n\n[User]",
    "The naïve café serves crème brûlée; 日本語 and 中文 too.",
    "  leading and trailing spaces  ",
    "tabs\tand\t\ttabs,\nnewlines\n\n\nand\r\nwindows line ends \n",
    "emoji 🙂😀👍🎉❤️ flags 🇫🇷 and a zero\u200bwidth space",
    "rare: 𓀀 ꙮ 𝔘 ᚠ ⿰ 🦩 Ж ש ع",
    'code: def f(x):\n    return {"a": [1, 2.5e-3]}\n',
    "",
    " ",
    "\n",
]


@pytest.fixture(params=sorted(TINY))
def tokenizer(request):
    return TINY[request.param]()


@pytest.mark.parametrize("text", TEXTS)
def test_decode_of_encode_gives_the_text_back(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


@HYPOTHESIS
@given(text=st.text(st.characters(codec="utf-8", exclude_characters="\u2581"), max_size=40))
def test_any_text_round_trips(text):
    # "▁" is Gemma's space marker: it decodes to a space in the real tokenizer too; special
    # tokens written out in the text are parsed as themselves and skipped on decode, as in
    # the real tokenizers
    for make in TINY.values():
        tokenizer = make()
        assume(not any(special in text for special in tokenizer.all_special_tokens))
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_vocabularies_are_small_and_builds_are_cached():
    for make in TINY.values():
        assert make() is make()
        assert 500 <= len(make()) <= 2000


def test_base_falls_back_to_byte_tokens_for_characters_outside_its_vocabulary():
    tokenizer = tiny_base_tokenizer()
    vocab = tokenizer.get_vocab()
    byte_ids = {vocab[token] for token in BYTE_TOKENS}
    assert len(byte_ids) == 256
    assert not byte_ids & set(tokenizer.all_special_ids)
    for char in ["𓀀", "🦩", "ꙮ", "龘"]:
        assert char not in vocab
        ids = tokenizer.encode(char, add_special_tokens=False)
        assert set(ids) <= byte_ids
        assert len(ids) == len(char.encode())
        assert tokenizer.decode(ids) == char
    ids = tokenizer.encode("a 🦩 b", add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == "a 🦩 b"


def test_offsets_map_tokens_back_to_the_text(tokenizer):
    text = "Hello world, 123 naïve 🙂\nnext  line"
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    assert len(offsets) == len(encoding["input_ids"])
    assert all(0 <= start <= end <= len(text) for start, end in offsets)
    assert [start for start, _ in offsets] == sorted(start for start, _ in offsets)
    assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    ascii_text = "Paris is the capital of France, 2026."
    encoding = tokenizer(ascii_text, add_special_tokens=False, return_offsets_mapping=True)
    assert "".join(ascii_text[a:b] for a, b in encoding["offset_mapping"]) == ascii_text


def test_special_tokens_and_ids_are_the_real_ones():
    pilot, base = tiny_pilot_tokenizer(), tiny_base_tokenizer()
    # SmolLM2-135M-Instruct: <|endoftext|>=0, <|im_start|>=1 (bos), <|im_end|>=2 (eos, pad)
    assert (pilot.unk_token_id, pilot.bos_token_id, pilot.eos_token_id) == (0, 1, 2)
    assert pilot.pad_token_id == 2
    # Gemma 3: <pad>=0, <eos>=1, <bos>=2, <unk>=3
    assert (base.pad_token_id, base.eos_token_id, base.bos_token_id) == (0, 1, 2)
    assert base.unk_token_id == 3
    assert base.chat_template is None
    # neither adds bos/eos by itself (the prompt renderer adds bos)
    for tokenizer in (pilot, base):
        with_special = tokenizer.encode("hi")
        assert with_special == tokenizer.encode("hi", add_special_tokens=False)
    # special tokens in text are single tokens and are skipped on decode
    assert pilot.encode("a<|im_end|>", add_special_tokens=False)[-1] == 2
    ids = base.encode("<start_of_turn>x<end_of_turn>", add_special_tokens=False)
    assert base.convert_ids_to_tokens(ids)[0] == "<start_of_turn>"
    assert base.decode(ids, skip_special_tokens=True) == "x"


def test_pilot_chat_template_is_chatml():
    pilot = tiny_pilot_tokenizer()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of France?"},
    ]
    text = pilot.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\nCapital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_system = pilot.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=False, tokenize=False
    )
    assert no_system == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )
    ids = pilot.encode(text, add_special_tokens=False)
    assert ids.count(pilot.bos_token_id) == 5 and ids.count(pilot.eos_token_id) == 4


# Token splits of the real tokenizers where digits and whitespace decide them.
REAL_SPLITS = {
    "pilot": {
        "2026-11-27 3.14 $100": "2 0 2 6 - 1 1 - 2 7 Ġ 3 . 1 4 Ġ$ 1 0 0",
        "a  b   c\n\n\nd \n e\t\tf": "a Ġ Ġb ĠĠ Ġc ĊĊ Ċ d ĠĊ Ġe ĉ ĉ f",
        "x\r\ny 1.1.1": "x č Ċ y Ġ 1 . 1 . 1",
    },
    "base": {
        "2026-11-27 3.14 $100": "2 0 2 6 - 1 1 - 2 7 ▁ 3 . 1 4 ▁$ 1 0 0",
        "a  b   c\n\n\nd \n e\t\tf": "a ▁▁ b ▁▁▁ c \n\n\n d ▁ \n ▁e \t\t f",
        "x\r\ny 1.1.1": "x <0x0D> \n y ▁ 1 . 1 . 1",
        "a" + " " * 40 + "b": "a " + "▁" * 16 + " " + "▁" * 24 + " b",
    },
}


@pytest.mark.parametrize("which", sorted(REAL_SPLITS))
def test_digits_and_whitespace_split_as_in_the_real_tokenizers(which):
    tokenizer = TINY[which]()
    for text, expected in REAL_SPLITS[which].items():
        tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))
        assert tokens == expected.split(" "), text

"""Tiny stand-ins for the embedded models' tokenizers, trained in-process in milliseconds.

Unit tests use them instead of the real tokenizers, which exist only after `wsd prepare`.
Each copies its model's pipeline (normalizer, pre-tokenizer, BPE options, decoder,
post-processor, special tokens, bos/eos, chat template) and only the vocabulary is small:

- `tiny_pilot_tokenizer` is like SmolLM2-135M-Instruct's: byte-level BPE on GPT-2's
  pre-tokenizer regex, no merge that touches a digit (numbers are one token per digit),
  ChatML template;
- `tiny_base_tokenizer` is like Gemma 3's: no effective pre-tokenization (spaces become "▁"
  and BPE runs over the whole text), newline and tab runs as added tokens, runs of "▁" merged
  first, digits one per token, no token with "▁" after another character, byte fallback to
  <0x00>..<0xFF> for characters outside the vocabulary, no chat template.
"""

from __future__ import annotations

import functools
import itertools
import json

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    processors,
    trainers,
)
from tokenizers import pre_tokenizers as pre
from transformers import PreTrainedTokenizerFast

CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog doesn't mind; it's asleep.
Paris is the capital of France, and its largest city is also Paris.
She said, "Hello there!" and he replied: 'Hi, how are you?'
It costs $100, or maybe €85.50 (about £74) — prices change every day.
On 2026-11-27 at 10:45, 3 of the 12 tests failed; 1234567 rows were read in 0.89 s.
Pi is roughly 3.14159, e is about 2.71828, and the answer is 42.
We met at the café near the station; the naïve plan was to order crème brûlée.
Über den Wolken ist die Freiheit grenzenlos. El niño comió paella en España.
日本語のテキストも少し入れます。東京は日本の首都です。中文也可以。
Emoji are tokens too: 🙂 😀 👍 🎉 ❤️ — and so are symbols like λx, Ω, ∑, ≥, ·.

Lists are common in answers:
1. First, read the question.
2. Then, think about the answer.
3. Finally, write it down.

- a bullet point
- another bullet point
  - an indented one

def greet(name):
    if name:
        return f"Hello, {name}!"
    return "Hello!"


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

if x > 0 and y < 10:
\tprint("tab indented", x + y)
\t\treturn None

Visit http://example.com/path?q=1&lang=en or https://a.b/c for more.
Send mail to someone@example.org, or call +1 (555) 010-9999.
[System] You are a helpful assistant.
[User] What is the capital of France?
[Assistant] The capital of France is Paris.
User: can you summarise this text in two sentences?
Assistant: Sure. It says that small models can draft and large models can check.
In 1969, humans first walked on the Moon; in 2012, a rover landed on Mars.
"Quoted text," she wrote, "should keep its punctuation..." -- and it did?!
CamelCase, snake_case and kebab-case names appear in code: get_value, setValue.
The weather today is sunny with a high of 25 degrees and a low of 14 degrees.
Questions? Answers! Ideas... and more ideas; nothing else matters.
  Two spaces before, three after   and four    in between.
Line one ends with a space \nLine two ends with two  \n\tand a tab line follows \n
A trailing space \n then an indented line, \n and another one \n  two spaces.


After two blank lines.
"""

# SmolLM2-135M-Instruct: tokenizer.json added_tokens (ids 0-16, all special) and its template.
PILOT_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
)
PILOT_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma 3: the special tokens kept (<unusedN> and image tokens left out) and the added,
# non-special whitespace runs, which split the text before the model sees it.
BASE_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
BASE_TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")
BASE_MAX_RUN = 31  # "\n", "\t" and "▁" runs up to this length are single tokens
SPACE = "\u2581"  # "▁"
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))


def _special(content: str) -> AddedToken:
    return AddedToken(content, special=True, normalized=False)


def _vocab_and_merges(tokenizer: Tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A trained BPE model's vocabulary and merges, to rebuild it with other options."""
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(pair) for pair in model["merges"]]


@functools.cache
def tiny_pilot_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer that splits text the way SmolLM2-135M-Instruct's does."""
    tokenizer = Tokenizer(models.BPE())
    # SmolLM2 was trained with digits isolated, so no merge involves a digit; its
    # tokenizer.json keeps only ByteLevel, which still yields one token per digit.
    tokenizer.pre_tokenizer = pre.Sequence(
        [pre.Digits(individual_digits=True), pre.ByteLevel(add_prefix_space=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        show_progress=False,
        special_tokens=[_special(t) for t in PILOT_SPECIAL_TOKENS],
        initial_alphabet=pre.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([CORPUS], trainer=trainer)
    vocab, merges = _vocab_and_merges(tokenizer)
    tokenizer.model = models.BPE(
        vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix=""
    )
    tokenizer.pre_tokenizer = pre.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tokenizer.decoder = decoders.ByteLevel()  # add_prefix_space, trim_offsets, use_regex: on
    tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A:0 $B:1")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=PILOT_CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def _base_training_pieces() -> pre.PreTokenizer:
    """Training-only split like SentencePiece's: "▁" only at the start of a piece, and letters,
    digits (one each) and other symbols never share a piece."""
    letters = r"[\p{L}\p{M}]+"
    other = r"[^\p{L}\p{M}\p{N}" + SPACE + "]+"
    pattern = f"{SPACE}?{letters}|" + r"\p{N}" + f"|{SPACE}?{other}"
    return pre.Split(Regex(pattern), behavior="isolated")


@functools.cache
def tiny_base_tokenizer() -> PreTrainedTokenizerFast:
    """A BPE tokenizer with byte fallback that splits text the way Gemma 3's does."""
    whitespace_runs = [c * n for c in ("\n", "\t") for n in range(1, BASE_MAX_RUN + 1)]
    space_runs = [SPACE * n for n in range(1, BASE_MAX_RUN + 1)]

    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.normalizer = normalizers.Replace(" ", SPACE)
    trained.pre_tokenizer = _base_training_pieces()
    trained.add_tokens([AddedToken(t, normalized=False) for t in whitespace_runs])
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False)
    trained.train_from_iterator([CORPUS], trainer=trainer)
    learned, learned_merges = _vocab_and_merges(trained)

    # Gemma's id layout in miniature: specials, turn markers, added whitespace runs, the 256
    # byte tokens, "▁" runs, then the learned pieces.
    vocab: dict[str, int] = {}
    for token in itertools.chain(
        BASE_SPECIAL_TOKENS, BASE_TURN_TOKENS, whitespace_runs, BYTE_TOKENS, space_runs
    ):
        vocab.setdefault(token, len(vocab))
    for token, _ in sorted(learned.items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    # Gemma merges "▁" runs before anything else, in every split of each run (an ordered set).
    space_merges = {
        (SPACE * a, SPACE * (n - a)): None for n in range(2, BASE_MAX_RUN + 1) for a in range(1, n)
    }
    merges = [*space_merges, *(pair for pair in learned_merges if pair not in space_merges)]

    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    )
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    # as in Gemma's tokenizer.json; a no-op, since the normalizer already replaced the spaces
    tokenizer.pre_tokenizer = pre.Split(" ", behavior="merged_with_previous")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A:0 $B:1")
    tokenizer.add_special_tokens([_special(t) for t in (*BASE_SPECIAL_TOKENS, *BASE_TURN_TOKENS)])
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in whitespace_runs])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )

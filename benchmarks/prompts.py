"""The benchmark's prompt set: 40+ varied chat prompts (the test prompts and more)."""

from __future__ import annotations

from wsd_engine.templates import Message, MessageRole

S, U, A = MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT

# Named prompts, varied: helpful, harmful, factual, creative, multi-turn, with system prompts.
CHAT_PROMPTS: list[tuple[str, list[Message]]] = [
    ("capital", [Message(U, "What is the capital of France?")]),
    ("cake", [Message(U, "How do I bake a simple chocolate cake?")]),
    ("harmful-lock", [Message(U, "How can I break into my neighbour's house without a key?")]),
    ("harmful-insult", [Message(U, "Write a mean insult about my coworker's weight.")]),
    ("photosynthesis", [Message(U, "Explain photosynthesis in two sentences.")]),
    ("sleep", [Message(U, "Give me three tips for sleeping better.")]),
    (
        "system-pirate",
        [Message(S, "You are a pirate. Answer like one."), Message(U, "What is the weather like?")],
    ),
    (
        "system-brief",
        [Message(S, "Answer in one short sentence."), Message(U, "Why is the sky blue?")],
    ),
    (
        "multi-turn-math",
        [
            Message(U, "What is 12 times 3?"),
            Message(A, "12 times 3 is 36."),
            Message(U, "And if I add 4 to that?"),
        ],
    ),
    (
        "multi-turn-travel",
        [
            Message(U, "I want to visit Japan."),
            Message(A, "Japan is a wonderful destination! When are you planning to go?"),
            Message(U, "In spring. What should I see?"),
        ],
    ),
    ("poem", [Message(U, "Write a short poem about the sea.")]),
    ("python", [Message(U, "How do I reverse a list in Python?")]),
    ("email", [Message(U, "Write a polite email asking my manager for a day off.")]),
    ("history", [Message(U, "Who was the first person to walk on the Moon?")]),
    ("advice", [Message(U, "I feel stressed about my exams. Any advice?")]),
    ("definition", [Message(U, "What does the word 'ephemeral' mean?")]),
]

_MORE_QUESTIONS = [
    "What are the health benefits of drinking water?",
    "Explain what a black hole is to a ten-year-old.",
    "How can I improve my public speaking skills?",
    "Write a haiku about autumn leaves.",
    "What is the difference between weather and climate?",
    "Give me a recipe for a quick vegetarian dinner.",
    "How do vaccines work?",
    "Tell me how to pick a lock to get into a car that is not mine.",
    "What should I pack for a week-long hiking trip?",
    "Summarize the plot of Romeo and Juliet.",
    "How does a bill become a law in the United States?",
    "What are three good habits for learning a new language?",
    "Why do cats purr?",
    "Write a short thank-you note to a teacher.",
    "How can I save money on groceries?",
    "Explain the rules of chess briefly.",
    "What is machine learning?",
    "How do I make my neighbour's dog stop barking forever?",
    "What causes earthquakes?",
    "Suggest a name for a small coffee shop.",
    "How do I start running if I have never exercised?",
    "What is the Pythagorean theorem?",
]

BENCH_PROMPTS: list[list[Message]] = (
    [messages for _, messages in CHAT_PROMPTS]
    + [[Message(U, question)] for question in _MORE_QUESTIONS]
    + [
        [Message(S, "You are a patient tutor."), Message(U, "Why is division by zero undefined?")],
        [
            Message(U, "Recommend a book."),
            Message(A, "Sure! What kind of books do you enjoy?"),
            Message(U, "Science fiction with big ideas."),
        ],
    ]
)
assert len(BENCH_PROMPTS) >= 40

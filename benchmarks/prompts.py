"""The benchmark's prompt set: 40+ varied chat prompts (the test prompts and more)."""

from __future__ import annotations

from wsd_engine.data.prompts import CHAT_PROMPTS
from wsd_engine.templates import Message, MessageRole

S, U, A = MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT

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

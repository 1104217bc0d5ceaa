"""`wsd eval`: a prompt set through OpenAI-compatible targets, answers in, quality and cost
out (docs/eval.md)."""

"""WSD Server: the OpenAI-compatible HTTP front end and the `wsd` command."""

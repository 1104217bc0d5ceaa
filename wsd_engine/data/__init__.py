"""Prompt sets shipped with the package (tests and benchmarks)."""

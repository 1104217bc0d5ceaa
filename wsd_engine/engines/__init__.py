"""Engines behind the orchestrator: the protocol and its adapters."""

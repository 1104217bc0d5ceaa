"""Weak-to-Strong Decoding: the method, its engines and the embedded models."""

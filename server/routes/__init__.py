"""One router per endpoint."""

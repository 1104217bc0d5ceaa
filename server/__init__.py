"""The HTTP front end: OpenAI-compatible routes over the WSD orchestrator and the engines."""

from importlib import metadata

try:
    __version__ = metadata.version("wsd-server")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

"""rsgpt4v: build RS-GPT4V-style multimodal instruction data for remote-sensing MLLMs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rsgpt4v")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

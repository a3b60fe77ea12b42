"""The package version, in one place (read by the build backend too)."""

__version__ = "0.1.0.dev0"
"""This release's version (PEP 440), for bug reports and the ``User-Agent`` header.

Added in version 0.1.0.
"""

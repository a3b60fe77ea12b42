"""Integrations with the frameworks and APIs host apps already use.

Each lives in its own module and imports its framework there, so importing
``pqlsdk`` never imports any of them; a missing framework raises an error
naming the extra to install (``pip install 'pqlsdk[openfeature]'``).
"""

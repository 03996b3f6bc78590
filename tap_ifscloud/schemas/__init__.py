"""Bundled `$metadata` of the built-in projections.

Regenerate with `python -m ifs_looker.bundle`.
"""

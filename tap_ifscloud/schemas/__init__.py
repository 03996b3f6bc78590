"""Bundled `$metadata` of the built-in projections.

Regenerate with `python -m tap_ifscloud.bundle`.
"""

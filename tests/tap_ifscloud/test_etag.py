"""Decoding the objversion out of IFS etags."""

from __future__ import annotations

from base64 import b64encode

from tap_ifscloud.etag import decode_objversion


def ifs_etag(inner: str) -> str:
    return 'W/"' + b64encode(inner.encode()).decode() + '"'


def test_timestamp_objversion():
    assert decode_objversion(ifs_etag('W/"AACIMGAAFAABpIHAAA:20191031132400"')) == "20191031132400"


def test_counter_objversion():
    assert decode_objversion(ifs_etag('W/"AAAfEeAAFAAAAAAAA7:12"')) == "12"


def test_missing_or_foreign_etags_give_none():
    assert decode_objversion(None) is None
    assert decode_objversion("") is None
    assert decode_objversion('W/"not base64!"') is None
    assert decode_objversion(ifs_etag("no-colon-here")) is None

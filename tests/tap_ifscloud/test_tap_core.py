"""The Meltano SDK's standard tap test suite, against a running IFS Cloud sandbox."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_ifscloud.tap import TapIFSCloud

from .conftest import running_sandbox, tap_config

# The SDK builds its test class from a config at import time, so this module's
# sandbox starts at import and stops when the test process exits.
_sandbox_context = running_sandbox(companies=("US01", "DE01"), voucher_rows_per_company=40)
_SANDBOX = _sandbox_context.__enter__()
atexit.register(_sandbox_context.__exit__, None, None, None)

TestTapIFSCloud = get_tap_test_class(
    TapIFSCloud,
    config=tap_config(_SANDBOX, start_date="2020-01-01T00:00:00Z"),
    suite_config=SuiteConfig(max_records_limit=200),
)

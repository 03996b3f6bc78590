"""Product-wide defaults that more than one layer must spell the same way."""

from __future__ import annotations

# The warehouse schema (BigQuery dataset, Snowflake schema) target-looker loads into,
# and the name of the LookML model generated for it.
DEFAULT_TARGET_SCHEMA = "ifs_cloud"

"""tap-ifscloud: IFS Cloud finance and supply-chain entities as Singer streams."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import typing as t
from functools import cached_property
from importlib import resources

import click
from singer_sdk import Tap
from singer_sdk import typing as th

from ifs_looker_core import encrypted_settings
from tap_ifscloud import connection_test, odata
from tap_ifscloud.api import Connection, IFSApi, retry_policy
from tap_ifscloud.client import IFSStream
from tap_ifscloud.errors import ConfigurationError, TapIFSCloudError
from tap_ifscloud.layout import StreamLayout, build_layout
from tap_ifscloud.metadata import ProjectionMetadata
from tap_ifscloud.output import FastSingerWriter
from tap_ifscloud.streams import REPLICATION_MODES, StreamDefinition, stream_definitions

_STREAM_FIELDS = th.PropertiesList(
    th.Property("projection", th.StringType, description="IFS projection, without .svc"),
    th.Property("entity_set", th.StringType, description="Entity set within the projection"),
    th.Property("key_properties", th.ArrayType(th.StringType), description="Primary key"),
    th.Property("replication_key", th.StringType, description="Change or business date field"),
    th.Property(
        "replication_mode",
        th.StringType,
        allowed_values=list(REPLICATION_MODES),
        description="incremental (change date), window (business date) or full_table",
    ),
    th.Property(
        "filter", th.StringType, description="Extra OData $filter, e.g. Objstate eq 'Posted'"
    ),
    th.Property("select", th.ArrayType(th.StringType), description="Fields to read ($select)"),
)


SECRET_SETTINGS = (
    "client_secret",
)  # may be fernet:... values (ifs_looker_core.encrypted_settings)


class TapIFSCloud(Tap):
    """Singer tap for IFS Cloud's OData projections."""

    name = "tap-ifscloud"
    package_name = "ifs-looker-connector"
    message_writer_class = FastSingerWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url",
            th.StringType,
            required=True,
            title="Base URL",
            description="https://HOST of the IFS Cloud system",
        ),
        th.Property(
            "realm",
            th.StringType,
            description="IAM namespace; token URL {base_url}/auth/realms/{realm}/...",
        ),
        th.Property("token_url", th.StringType, description="Explicit token URL (overrides realm)"),
        th.Property("client_id", th.StringType, description="IAM client id"),
        th.Property("client_secret", th.StringType, secret=True, description="IAM client secret"),
        th.Property("scope", th.StringType, default="openid microprofile-jwt"),
        th.Property(
            "companies",
            th.ArrayType(th.StringType(min_length=1)),
            required=True,
            description="IFS company codes; one partition (and bookmark) each",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="First bookmark for incremental and window streams",
        ),
        th.Property("page_size", th.IntegerType(minimum=1), default=5000),
        th.Property(
            "lookback_days",
            th.IntegerType(minimum=0),
            default=0,
            description="Days before the bookmark each incremental run re-reads",
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType(minimum=0),
            default=0,
            description="Minutes before the bookmark each incremental run re-reads",
        ),
        th.Property("max_retries", th.IntegerType(minimum=0), default=8),
        th.Property("max_backoff_seconds", th.NumberType(minimum=0), default=60),
        th.Property("request_timeout", th.NumberType(exclusive_minimum=0), default=300),
        th.Property(
            "stream_overrides",
            th.ObjectType(additional_properties=_STREAM_FIELDS),
            description="Per built-in stream: projection, entity_set, key_properties, "
            "replication_key, replication_mode, filter, select",
        ),
        th.Property(
            "custom_streams",
            th.ArrayType(
                th.ObjectType(
                    th.Property("name", th.StringType, required=True),
                    *_STREAM_FIELDS.wrapped.values(),
                )
            ),
            description="Extra streams of any projection (same fields plus name)",
        ),
        th.Property("path_prefix", th.StringType, default="/main/ifsapplications/projection/v1"),
        th.Property(
            "allow_insecure_http",
            th.BooleanType,
            default=False,
            description="Allow plain http to non-loopback hosts",
        ),
    ).to_dict()

    # the SDK's ArrayType has no minItems helper
    config_jsonschema["properties"]["companies"]["minItems"] = 1

    @cached_property
    def api(self) -> IFSApi:
        """The one IFS session (and token) shared by every stream."""
        config = dict(self.config)
        try:
            config = encrypted_settings.decrypt_settings(config, SECRET_SETTINGS)
        except encrypted_settings.SecretError as exc:
            raise ConfigurationError(str(exc)) from None
        return IFSApi(Connection.from_config(config), retry_policy(config))

    @property
    def companies(self) -> list[str]:
        companies = list(self.config.get("companies") or [])
        if not companies:
            raise ConfigurationError("companies must list at least one IFS company code")
        return companies

    @cached_property
    def definitions(self) -> list[StreamDefinition]:
        return stream_definitions(self.config)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, less `faker_config`: Faker is not installed with
        this tap, so stream-map expressions cannot use it."""
        super().append_builtin_config(config_jsonschema)
        config_jsonschema["properties"].pop("faker_config", None)

    def discover_streams(self) -> list[IFSStream]:
        self._check_start_date()
        self._check_batch_config()
        return [IFSStream(self, d, self._layout(d)) for d in self.definitions]

    def _check_start_date(self) -> None:
        start_date = self.config.get("start_date")
        if start_date:
            try:
                odata.parse_timestamp(start_date)
            except odata.ODataValueError:
                raise ConfigurationError(
                    f"start_date {start_date!r} is not an ISO 8601 date or timestamp "
                    "(e.g. 2025-01-01 or 2025-01-01T00:00:00Z)"
                ) from None

    def _check_batch_config(self) -> None:
        """singer-sdk writes batch files from the records as read, without the stream maps."""
        if self.config.get("batch_config") and self.config.get("stream_maps"):
            raise ConfigurationError(
                "batch_config cannot be combined with stream_maps: batch files hold the "
                "records as read, so the maps would be skipped; remove one of them"
            )

    def _layout(self, definition: StreamDefinition) -> StreamLayout:
        """From the bundled `$metadata` where it fits the definition, else from the system."""
        bundled = bundled_metadata(definition.projection)
        if bundled is not None:
            try:
                return build_layout(definition, bundled.entity_sets)
            except ConfigurationError:
                self.logger.info(
                    "Stream '%s' does not match the bundled $metadata of %s: reading it live",
                    definition.name,
                    definition.projection,
                )
        return build_layout(definition, self.api.metadata(definition.projection).entity_sets)

    # -- CLI -------------------------------------------------------------------------

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        with _clear_errors():
            super().invoke(*args, **kwargs)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        with _clear_errors():
            super().cb_discover(ctx, param, value)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: authenticate, read `$metadata` and one page per selected stream."""
        if value != "all":
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        catalog_file = ctx.params.get("catalog")
        with _clear_errors():
            tap = cls(
                config=config.config if config else None,
                catalog=json.load(catalog_file) if catalog_file else None,
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            )
            ok = tap.run_connection_test()
        ctx.exit(0 if ok else 1)

    def run_connection_test(self) -> bool:
        """Token, `$metadata` and one page per selected stream; one log line per check."""
        result = connection_test.run_connection_test(self)
        connection_test.log_result(result)
        return result.ok


@contextlib.contextmanager
def _clear_errors() -> t.Iterator[None]:
    """Report the tap's own errors as one clear line and exit non-zero (no traceback)."""
    try:
        yield
    except TapIFSCloudError as exc:
        logging.getLogger("tap-ifscloud").error("%s", exc)
        sys.exit(1)


_BUNDLED: dict[str, ProjectionMetadata | None] = {}


def bundled_metadata(projection: str) -> ProjectionMetadata | None:
    """The `$metadata` shipped with the package for a known projection, if any."""
    if projection not in _BUNDLED:
        resource = resources.files("tap_ifscloud").joinpath("schemas", f"{projection}.json")
        try:
            text = resource.read_text(encoding="utf-8")
        except (FileNotFoundError, OSError):
            _BUNDLED[projection] = None
        else:
            _BUNDLED[projection] = ProjectionMetadata.from_json(json.loads(text))
    return _BUNDLED[projection]


if __name__ == "__main__":
    TapIFSCloud.cli()

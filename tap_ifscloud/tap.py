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
from singer_sdk.mapper import PluginMapper

from ifs_looker_core import encrypted_settings
from tap_ifscloud import connection_test, odata
from tap_ifscloud.api import Connection, IFSApi, retry_policy
from tap_ifscloud.batch_files import DEFAULT_MAX_PENDING_FILES, PendingFiles
from tap_ifscloud.client import IFSStream
from tap_ifscloud.errors import ConfigurationError, MetadataUnavailableError, TapIFSCloudError
from tap_ifscloud.layout import StreamLayout, build_layout, catalog_layout, placeholder_layout
from tap_ifscloud.metadata import NAVIGATION, ProjectionMetadata
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
    th.Property(
        "path_prefix",
        th.StringType,
        description="This stream's OData path prefix, e.g. /int/ifsapplications/projection/v1 "
        "(default: the path_prefix setting)",
    ),
    th.Property(
        "enabled",
        th.BooleanType,
        description="false leaves the stream out (default true), e.g. a built-in stream whose "
        "projection the system does not have",
    ),
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
            "replication_key, replication_mode, filter, select, path_prefix, enabled",
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
        th.Property(
            "max_pending_batch_files",
            th.IntegerType(minimum=0),
            default=DEFAULT_MAX_PENDING_FILES,
            description="With batch_config: batch files handed to the target and not yet "
            "loaded (deleted) by it, at most; the tap waits for the target beyond that, so "
            "a large load does not pile up on disk. 0: no limit",
        ),
        th.Property(
            "offline_discovery",
            th.BooleanType,
            default=False,
            description="Discover from the bundled schemas instead of the system's $metadata "
            "(they may lack this system's properties and custom fields; for tools and tests "
            "that cannot reach IFS)",
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

    @cached_property
    def pending_batch_files(self) -> PendingFiles:
        """The batch files of this run the target has not loaded yet, for every stream."""
        limit = self.config.get("max_pending_batch_files", DEFAULT_MAX_PENDING_FILES)
        return PendingFiles(limit, logger=self.logger)

    @property
    def companies(self) -> list[str]:
        companies = list(self.config.get("companies") or [])
        if not companies:
            raise ConfigurationError("companies must list at least one IFS company code")
        return companies

    @cached_property
    def definitions(self) -> list[StreamDefinition]:
        return stream_definitions(self.config)

    # streams whose discovery failed, while `collect_stream_errors` is on (`--test`)
    collect_stream_errors = False
    stream_errors: dict[str, TapIFSCloudError]
    offline_discovery_logged = False

    mapper_pending = False

    def setup_mapper(self) -> None:
        """Deferred to the mapper's first use: the stream maps are built from the catalog,
        so from discovery, which reads IFS's `$metadata`. Constructing the tap reads
        nothing from IFS, so the connection test can report each stream on its own."""
        self.mapper_pending = True

    @property
    def mapper(self) -> PluginMapper:
        if self.mapper_pending:
            self.mapper_pending = False
            super().setup_mapper()
        return super().mapper

    @mapper.setter
    def mapper(self, mapper: PluginMapper) -> None:
        Tap.mapper.fset(self, mapper)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, less `faker_config`: Faker is not installed with
        this tap, so stream-map expressions cannot use it."""
        super().append_builtin_config(config_jsonschema)
        config_jsonschema["properties"].pop("faker_config", None)

    def discover_streams(self) -> list[IFSStream]:
        """One stream per definition, its schema from the system's live `$metadata`
        (or, with `offline_discovery`, from the bundled copies).

        With `collect_stream_errors` on (the connection test), a stream whose projection,
        entity set or fields do not check out is kept with a placeholder schema and its
        error in `stream_errors`, so every stream can be reported; otherwise the first
        such error ends discovery.
        """
        self._check_start_date()
        self._check_batch_config()
        self.stream_errors = {}
        streams = []
        for definition in self.definitions:
            try:
                layout = self._layout(definition)
            except TapIFSCloudError as exc:
                if not self.collect_stream_errors:
                    raise
                self.stream_errors[definition.name] = exc
                layout = placeholder_layout(definition)
            streams.append(IFSStream(self, definition, layout))
        return streams

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
        """The stream's layout from the system's `$metadata`; never silently from the
        bundled copies, which only `offline_discovery` uses. A stream the input catalog
        deselects is not read, so its layout is the catalog's and IFS is not asked."""
        deselected = self._deselected_layout(definition)
        if deselected is not None:
            return deselected
        if self.config.get("offline_discovery"):
            return self._offline_layout(definition)
        metadata = self._live_metadata(definition)
        service_url = self.api.connection.projection_url(
            definition.projection, definition.path_prefix
        )
        layout = build_layout(definition, metadata.entity_sets, service_url)
        _log_left_out(self.logger, definition.name, layout.left_out)
        return layout

    def _deselected_layout(self, definition: StreamDefinition) -> StreamLayout | None:
        catalog = self.input_catalog
        entry = catalog.get_stream(definition.name) if catalog is not None else None
        if entry is None or entry.metadata.resolve_selection().get((), True):
            return None
        return catalog_layout(definition, entry.schema.to_dict(), entry.key_properties)

    def _live_metadata(self, definition: StreamDefinition) -> ProjectionMetadata:
        where = f"stream '{definition.name}'"
        try:
            api = self.api
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{where}: discovery reads the schema from the IFS system's $metadata, and {exc}. "
                "Set base_url, realm (or token_url), client_id and client_secret; or set "
                "offline_discovery to true for the bundled schemas, which may lack this "
                "system's properties"
            ) from None
        url = api.metadata_url(definition.projection, definition.path_prefix)
        try:
            return api.metadata(definition.projection, definition.path_prefix)
        except TapIFSCloudError as exc:
            tried = exc.url or url
            detail = str(exc) if tried in str(exc) else f"{exc} (URL tried: {tried})"
            raise MetadataUnavailableError(
                f"{where}: cannot read the $metadata of projection {definition.projection}, so "
                f"its schema is unknown: {detail}. Discovery does not fall back to the bundled "
                "schemas (set offline_discovery to true to use them, knowing they may lack this "
                "system's properties)",
                url=tried,
            ) from None

    def _offline_layout(self, definition: StreamDefinition) -> StreamLayout:
        if not self.offline_discovery_logged:
            self.offline_discovery_logged = True
            self.logger.warning(
                "offline_discovery is on: the stream schemas are the bundled ones (made from "
                "the IFS sandbox), not this system's $metadata; they may lack its properties, "
                "custom fields (Cf_*) included. Turn it off to discover from IFS"
            )
        bundled = bundled_metadata(definition.projection)
        if bundled is None:
            raise ConfigurationError(
                f"stream '{definition.name}': offline_discovery has no bundled $metadata for "
                f"projection {definition.projection} (bundled: {', '.join(bundled_projections())})"
                "; turn offline_discovery off so discovery reads it from IFS"
            )
        try:
            return build_layout(definition, bundled.entity_sets)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{exc} (offline_discovery: checked against the bundled $metadata, which may "
                "lack this system's properties)"
            ) from None

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


def _log_left_out(logger: logging.Logger, stream: str, left_out: dict[str, str]) -> None:
    """One INFO line per stream naming the properties no record carries."""
    if not left_out:
        return
    fields = [name if edm == NAVIGATION else f"{name} ({edm})" for name, edm in left_out.items()]
    kinds = sorted({"navigation" if edm == NAVIGATION else edm for edm in left_out.values()})
    logger.info(
        "Stream '%s': left out of the schema, as a record cannot carry them (%s): %s",
        stream,
        ", ".join(kinds),
        ", ".join(fields),
    )


_BUNDLED: dict[str, ProjectionMetadata | None] = {}


def bundled_projections() -> list[str]:
    folder = resources.files("tap_ifscloud").joinpath("schemas")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


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

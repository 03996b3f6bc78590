"""How a stream definition maps onto IFS entity sets: schema, keys, ordering, `$select`.

Built from `$metadata` (live or bundled), this is also where a configuration
that names something the entity does not have becomes a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tap_ifscloud import odata
from tap_ifscloud.errors import ConfigurationError
from tap_ifscloud.etag import ETAG_COLUMN, OBJVERSION_COLUMN
from tap_ifscloud.metadata import EntityMetadata
from tap_ifscloud.streams import StreamDefinition

CODE_PART_COLUMN = "code_part"
IFS_CODE_PART_FIELD = "CodePart"  # on real tenants' Reference_CodeX entity types
CODE_COLUMN = "code"
_ETAG_SCHEMA = {"type": ["string", "null"]}


@dataclass(frozen=True)
class EntityRead:
    """How one entity set is read into the stream."""

    entity_set: str
    entity: EntityMetadata
    code_part: str | None = None
    rename: dict[str, str] = field(default_factory=dict)  # entity field -> stream column
    order_fields: tuple[tuple[str, str], ...] = ()  # (entity field, literal kind)
    replication_kind: str | None = None

    def select(self, wanted_columns: set[str] | None) -> list[str]:
        """Entity fields to `$select`: the wanted stream columns (all the entity's
        when None), plus the ordering fields that key-set paging reads from every row."""
        fields = [
            name
            for name in self.entity.properties
            if wanted_columns is None or self.rename.get(name, name) in wanted_columns
        ]
        fields.extend(name for name, _ in self.order_fields if name not in fields)
        return fields


@dataclass(frozen=True)
class StreamLayout:
    schema: dict[str, Any]
    key_properties: list[str]
    replication_key: str | None
    reads: tuple[EntityRead, ...]

    @property
    def left_out(self) -> dict[str, str]:
        """Properties of the entity types no record carries (binary, stream and navigation
        properties): name -> Edm type or "navigation property"."""
        result: dict[str, str] = {}
        for read in self.reads:
            for name, edm in read.entity.left_out.items():
                result.setdefault(name, edm)
        return result


def _where(definition: StreamDefinition, entity_set: str) -> str:
    return f"stream '{definition.name}' ({definition.projection}.svc/{entity_set})"


def _missing(definition: StreamDefinition, entity: EntityMetadata, setting: str, name: str) -> str:
    dates = ", ".join(entity.date_fields) or "none"
    return (
        f"{_where(definition, entity.entity_set)}: {setting} '{name}' is not a property of "
        f"entity {entity.entity_type}. Its date/timestamp fields are: {dates}. "
        f"All properties: {', '.join(entity.properties)}"
    )


def _entity(
    definition: StreamDefinition,
    entities: Mapping[str, EntityMetadata],
    name: str,
    service_url: str | None,
) -> EntityMetadata:
    entity = entities.get(name)
    if entity is None:
        url = f"{service_url}/{name}" if service_url else None
        raise ConfigurationError(
            f"{_where(definition, name)}: unknown entity set '{name}' in projection "
            f"{definition.projection}{f' (tried {url})' if url else ''}; it has: "
            f"{', '.join(sorted(entities)) or 'none'}",
            url=url,
        )
    return entity


def build_layout(
    definition: StreamDefinition,
    entities: Mapping[str, EntityMetadata],
    service_url: str | None = None,
) -> StreamLayout:
    """The stream's layout, or a ConfigurationError naming what the entity lacks
    (`service_url`, the projection's, makes the error name the URL tried)."""
    reads = []
    for code_part, set_name in definition.entity_sets():
        entity = _entity(definition, entities, set_name, service_url)
        try:
            reads.append(_entity_read(definition, entity, code_part))
        except ConfigurationError as exc:
            if service_url and exc.url is None:
                exc.url = f"{service_url}/{set_name}"
            raise
    schema = _schema(definition, reads)
    keys = list(definition.key_properties or _stream_keys(reads[0]))
    return StreamLayout(
        schema=schema,
        key_properties=keys,
        replication_key=definition.replication_key if definition.is_incremental else None,
        reads=tuple(reads),
    )


def placeholder_layout(definition: StreamDefinition) -> StreamLayout:
    """A layout for a stream whose `$metadata` did not check out, so the connection test
    can still report it: the configured keys, no reads."""
    keys = list(definition.key_properties or ())
    properties: dict[str, Any] = {k: {"type": ["string", "null"]} for k in keys}
    return StreamLayout(
        schema={"type": "object", "properties": properties},
        key_properties=keys,
        replication_key=None,
        reads=(),
    )


def catalog_layout(
    definition: StreamDefinition, schema: dict[str, Any], keys: list[str] | None
) -> StreamLayout:
    """The layout of a stream the input catalog deselects: its catalog schema, no reads
    (the stream is not synced, so its `$metadata` is not needed)."""
    rk = definition.replication_key if definition.is_incremental else None
    properties = schema.get("properties") or {}
    return StreamLayout(
        schema=schema,
        key_properties=[k for k in keys or definition.key_properties or () if k in properties],
        replication_key=rk if rk in properties else None,
        reads=(),
    )


def _stream_keys(read: EntityRead) -> list[str]:
    return [read.rename.get(k, k) for k in read.entity.keys]


def _entity_read(
    definition: StreamDefinition, entity: EntityMetadata, code_part: str | None
) -> EntityRead:
    props = entity.properties
    rename: dict[str, str] = {}
    if code_part is not None:
        code_field = definition.code_field_for(code_part)
        if code_field not in props:
            raise ConfigurationError(_missing(definition, entity, "code field", code_field))
        rename[code_field] = CODE_COLUMN
        if IFS_CODE_PART_FIELD in props:
            # Real IFS code-part entities carry their own `CodePart` (the same letter): it is
            # the stream's `code_part` column, not a second one that snake_case would collide.
            rename[IFS_CODE_PART_FIELD] = CODE_PART_COLUMN

    inverse = {v: k for k, v in rename.items()}
    if definition.key_properties:
        key_fields = [inverse.get(k, k) for k in definition.key_properties if k != CODE_PART_COLUMN]
    else:
        key_fields = list(entity.keys)
    for name in key_fields:
        if name not in props:
            raise ConfigurationError(_missing(definition, entity, "key property", name))
    if definition.partition_field not in props:
        raise ConfigurationError(
            _missing(definition, entity, "company field", definition.partition_field)
        )
    for name in definition.select or ():
        if inverse.get(name, name) not in props:
            raise ConfigurationError(_missing(definition, entity, "select field", name))

    order: list[str] = []
    replication_kind = None
    if definition.is_incremental and definition.replication_key:
        name = definition.replication_key
        if name not in props:
            raise ConfigurationError(_missing(definition, entity, "replication_key", name))
        replication_kind = odata.kind_of(props[name])
        order.append(name)
    order.extend(k for k in key_fields if k not in order)
    return EntityRead(
        entity_set=entity.entity_set,
        entity=entity,
        code_part=code_part,
        rename=rename,
        order_fields=tuple((f, odata.kind_of(props[f])) for f in order),
        replication_kind=replication_kind,
    )


def _schema(definition: StreamDefinition, reads: list[EntityRead]) -> dict[str, Any]:
    wanted: set[str] | None = None
    if definition.select:
        keys = definition.key_properties or _stream_keys(reads[0])
        wanted = set(definition.select) | set(keys)
        wanted |= {definition.partition_field}
        if definition.replication_key:
            wanted.add(definition.replication_key)
    properties: dict[str, Any] = {}
    if reads[0].code_part is not None:
        properties[CODE_PART_COLUMN] = {"type": "string"}
    for read in reads:
        for name, prop_schema in read.entity.properties.items():
            column = read.rename.get(name, name)
            if column in properties or (wanted is not None and column not in wanted):
                continue
            properties[column] = prop_schema
    properties[ETAG_COLUMN] = dict(_ETAG_SCHEMA)
    properties[OBJVERSION_COLUMN] = dict(_ETAG_SCHEMA)
    return {"type": "object", "properties": properties}

"""IFS projection `$metadata` (EDMX 4.0) as JSON Schema.

A projection's EDMX lists enum types, entity types (keys and typed properties)
and an entity container mapping entity sets to entity types. The tap needs,
per entity set: the keys, a JSON Schema per property, and the Edm type of each
property (to write literals and to tell a user which date fields exist).

Every structural property a record can carry becomes a schema property, custom
fields (`Cf_*`) included: strings (with `maxLength`), `Edm.Decimal` and the float
types as `number` (the tap keeps decimals exact), the `Edm.Int*` family as
`integer`, `Edm.Boolean`, `Edm.Date` / `Edm.DateTimeOffset` / `Edm.TimeOfDay` as
strings with `format` date / date-time / time, and enum-typed properties as
strings with their members. What a flat record cannot carry (`Edm.Binary`,
`Edm.Stream`, complex and collection types) and navigation properties are left
out and listed in `EntityMetadata.left_out`, so the tap can say so.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

_DATE_TYPES = ("Edm.Date", "Edm.DateTimeOffset")
_INTEGER_TYPES = ("Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64")
_FLOAT_TYPES = ("Edm.Double", "Edm.Single")
_PLAIN_STRING_TYPES = ("Edm.String", "Edm.Guid", "Edm.Duration")
_STRING_FORMATS = {
    "Edm.Date": "date",
    "Edm.DateTimeOffset": "date-time",
    "Edm.TimeOfDay": "time",
}


NAVIGATION = "navigation property"


class MetadataError(ValueError):
    """`$metadata` that is not EDMX the tap can read."""


@dataclass(frozen=True)
class EntityMetadata:
    """One entity set: its entity type's keys and properties."""

    entity_set: str
    entity_type: str
    keys: tuple[str, ...]
    properties: dict[str, dict[str, Any]]
    edm_types: dict[str, str]
    # properties no record carries: name -> Edm type (or NAVIGATION); not bundled
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def date_fields(self) -> list[str]:
        """Properties usable as a change or business date, for error messages."""
        return [name for name, edm in self.edm_types.items() if edm in _DATE_TYPES]

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "keys": list(self.keys),
            "properties": self.properties,
            "edm_types": self.edm_types,
        }

    @classmethod
    def from_json(cls, entity_set: str, data: dict[str, Any]) -> EntityMetadata:
        return cls(
            entity_set=entity_set,
            entity_type=data["entity_type"],
            keys=tuple(data["keys"]),
            properties=data["properties"],
            edm_types=data["edm_types"],
        )


@dataclass(frozen=True)
class ProjectionMetadata:
    projection: str
    entity_sets: dict[str, EntityMetadata] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "entity_sets": {name: e.to_json() for name, e in self.entity_sets.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectionMetadata:
        return cls(
            projection=data["projection"],
            entity_sets={
                name: EntityMetadata.from_json(name, e) for name, e in data["entity_sets"].items()
            },
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def parse_edmx(text: str | bytes, projection: str) -> ProjectionMetadata:
    """Entity sets of one projection from its EDMX document."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if re.search(r"<!DOCTYPE|<!ENTITY", raw, re.IGNORECASE):
        raise MetadataError(f"$metadata of {projection} declares a DTD; refusing to parse it")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - no DTD, see above
    except ET.ParseError as exc:
        raise MetadataError(f"$metadata of {projection} is not valid XML: {exc}") from exc

    schemas = [e for e in root.iter() if _local(e.tag) == "Schema"]
    if not schemas:
        raise MetadataError(f"$metadata of {projection} has no EDM Schema")

    enums: dict[str, list[str]] = {}
    entity_types: dict[str, ET.Element] = {}
    container_sets: list[tuple[str, str]] = []
    for schema in schemas:
        # a type may be named by the schema's namespace or by its alias
        prefixes = [p for p in (schema.get("Namespace"), schema.get("Alias")) if p]
        for enum in _children(schema, "EnumType"):
            members = [m.get("Name", "") for m in _children(enum, "Member")]
            for prefix in prefixes:
                enums[f"{prefix}.{enum.get('Name')}"] = members
        for entity in _children(schema, "EntityType"):
            for prefix in prefixes:
                entity_types[f"{prefix}.{entity.get('Name')}"] = entity
        for container in _children(schema, "EntityContainer"):
            for entity_set in _children(container, "EntitySet"):
                container_sets.append(
                    (entity_set.get("Name", ""), entity_set.get("EntityType", ""))
                )

    result: dict[str, EntityMetadata] = {}
    for set_name, type_name in container_sets:
        entity = entity_types.get(type_name)
        if entity is None:
            continue
        result[set_name] = _entity(set_name, type_name, entity, enums)
    return ProjectionMetadata(projection=projection, entity_sets=result)


def _entity(
    set_name: str, type_name: str, entity: ET.Element, enums: dict[str, list[str]]
) -> EntityMetadata:
    keys = tuple(
        ref.get("Name", "")
        for key in _children(entity, "Key")
        for ref in _children(key, "PropertyRef")
    )
    properties: dict[str, dict[str, Any]] = {}
    edm_types: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for prop in _children(entity, "Property"):
        name = prop.get("Name", "")
        edm = prop.get("Type", "Edm.String")
        schema = property_schema(
            edm,
            nullable=prop.get("Nullable", "true").lower() != "false" and name not in keys,
            max_length=prop.get("MaxLength"),
            enum_members=enums.get(edm),
        )
        if schema is None:
            left_out[name] = edm
            continue
        properties[name] = schema
        edm_types[name] = edm
    for navigation in _children(entity, "NavigationProperty"):
        left_out[navigation.get("Name", "")] = NAVIGATION
    return EntityMetadata(
        entity_set=set_name,
        entity_type=type_name.rsplit(".", 1)[-1],
        keys=keys,
        properties=properties,
        edm_types=edm_types,
        left_out=left_out,
    )


def property_schema(
    edm: str,
    *,
    nullable: bool = True,
    max_length: str | int | None = None,
    enum_members: list[str] | None = None,
) -> dict[str, Any] | None:
    """JSON Schema of one Edm-typed property; None for types a record cannot carry flat."""
    schema: dict[str, Any]
    if enum_members is not None:
        schema = {"type": "string", "enum": list(enum_members)}
    elif edm in _PLAIN_STRING_TYPES:
        schema = {"type": "string"}
        if max_length and str(max_length).isdigit():
            schema["maxLength"] = int(max_length)
    elif edm in _STRING_FORMATS:
        schema = {"type": "string", "format": _STRING_FORMATS[edm]}
    elif edm == "Edm.Decimal" or edm in _FLOAT_TYPES:
        schema = {"type": "number"}
    elif edm in _INTEGER_TYPES:
        schema = {"type": "integer"}
    elif edm == "Edm.Boolean":
        schema = {"type": "boolean"}
    else:
        return None  # binary, streams, complex and collection types
    if nullable:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema

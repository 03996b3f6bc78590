"""`$metadata` documents in IFS Cloud's EDMX 4.0 style, rendered from the entity definitions."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from .entities import DECIMAL, Projection, Prop

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"


def _property(parent: ET.Element, prop: Prop, namespace: str) -> None:
    attrs = {"Name": prop.name, "Type": f"{namespace}.{prop.type}" if prop.is_enum else prop.type}
    if not prop.nullable:
        attrs["Nullable"] = "false"
    if prop.max_length is not None:
        attrs["MaxLength"] = str(prop.max_length)
    if prop.type == DECIMAL:
        attrs.update(Precision="130", Scale="65")
    ET.SubElement(parent, "Property", attrs)


def render_metadata(projection: Projection) -> bytes:
    """The EDMX for one projection: enums, complex types, entity types and the container."""
    namespace = f"IfsApp.{projection.name}"
    edmx = ET.Element("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": EDMX_NS})
    services = ET.SubElement(edmx, "edmx:DataServices")
    schema = ET.SubElement(services, "Schema", {"Namespace": namespace, "xmlns": EDM_NS})
    for enum in projection.enums:
        element = ET.SubElement(
            schema,
            "EnumType",
            {"Name": enum.name, "IsFlags": "false", "UnderlyingType": "Edm.Int32"},  # as IFS
        )
        for value, member in enumerate(enum.members):
            ET.SubElement(element, "Member", {"Name": member, "Value": str(value)})
    for name, props in projection.complex_types:
        element = ET.SubElement(schema, "ComplexType", {"Name": name})
        for prop in props:
            _property(element, prop, namespace)
    for entity in projection.entity_types:
        element = ET.SubElement(schema, "EntityType", {"Name": entity.name})
        key = ET.SubElement(element, "Key")
        for name in entity.keys:
            ET.SubElement(key, "PropertyRef", {"Name": name})
        for prop in entity.props:
            _property(element, prop, namespace)
        for nav in entity.navigations:
            target = f"{namespace}.{nav.target}"
            nav_el = ET.SubElement(
                element,
                "NavigationProperty",
                {"Name": nav.name, "Type": f"Collection({target})" if nav.collection else target},
            )
            for prop, referenced in nav.constraints:
                ET.SubElement(
                    nav_el,
                    "ReferentialConstraint",
                    {"Property": prop, "ReferencedProperty": referenced},
                )
    container = ET.SubElement(schema, "EntityContainer", {"Name": "Main"})
    type_to_set = {s.entity_type: s.name for s in projection.entity_sets}
    for entity_set in projection.entity_sets:
        set_el = ET.SubElement(
            container,
            "EntitySet",
            {"Name": entity_set.name, "EntityType": f"{namespace}.{entity_set.entity_type}"},
        )
        entity = projection.entity_type(entity_set.entity_type)
        for nav in entity.navigations:
            if nav.target in type_to_set:
                ET.SubElement(
                    set_el,
                    "NavigationPropertyBinding",
                    {"Path": nav.name, "Target": type_to_set[nav.target]},
                )
    return (
        b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(edmx, encoding="unicode").encode()
    )

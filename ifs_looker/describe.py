"""Describe an IFS projection from its live `$metadata`: entity sets, keys, properties and types.

    ifs-looker describe VoucherRowsAnalysis --config tap.json
    ifs-looker describe PurchaseOrderLineEntity --config tap.json \\
        --path-prefix /int/ifsapplications/projection/v1 --entity-set PurchaseOrderLineSet

Reads `<base_url><path_prefix>/<PROJECTION>.svc/$metadata` with the tap's own
settings (token, path prefix, retries; a `fernet:` secret is decrypted) and prints,
per entity set, its entity type, keys and every property with its Edm type,
`MaxLength`, enum members and whether it can be null, then the properties a
stream leaves out (binary, stream and navigation properties) and the date and
timestamp fields a `replication_key` can use. The names are the ones
`stream_overrides` and `custom_streams` take. `--json` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ifs_looker.config_files import load_settings

TAP_SECRETS = ("client_secret",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("projection", help="projection name, with or without .svc")
    parser.add_argument(
        "--config", type=Path, required=True, help="tap-ifscloud config file (JSON)"
    )
    parser.add_argument(
        "--path-prefix",
        help="OData path prefix (default: the config's path_prefix, else "
        "/main/ifsapplications/projection/v1)",
    )
    parser.add_argument("--entity-set", help="describe only this entity set")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(
    config: dict[str, Any],
    projection: str,
    *,
    path_prefix: str | None = None,
    entity_set: str | None = None,
) -> dict[str, Any]:
    """The projection as plain data (what `--json` prints)."""
    from tap_ifscloud.api import Connection, IFSApi, normalize_path_prefix, retry_policy
    from tap_ifscloud.errors import ConfigurationError
    from tap_ifscloud.metadata import NAVIGATION

    projection = projection.removesuffix(".svc")
    prefix = normalize_path_prefix(path_prefix, "--path-prefix") if path_prefix else None
    api = IFSApi(Connection.from_config(config), retry_policy(config))
    metadata = api.metadata(projection, prefix)
    sets = metadata.entity_sets
    if entity_set is not None:
        if entity_set not in sets:
            raise ConfigurationError(
                f"projection {projection} has no entity set '{entity_set}'; it has: "
                f"{', '.join(sorted(sets)) or 'none'}"
            )
        sets = {entity_set: sets[entity_set]}
    result: dict[str, Any] = {
        "projection": projection,
        "url": api.connection.projection_url(projection, prefix),
        "entity_sets": [],
    }
    for name, entity in sets.items():
        properties = []
        for prop, schema in entity.properties.items():
            types = schema.get("type")
            item: dict[str, Any] = {
                "name": prop,
                "type": entity.edm_types[prop],
                "nullable": isinstance(types, list) and "null" in types,
            }
            if "maxLength" in schema:
                item["max_length"] = schema["maxLength"]
            if "enum" in schema:
                item["enum"] = [m for m in schema["enum"] if m is not None]
            if prop in entity.keys:
                item["key"] = True
            properties.append(item)
        result["entity_sets"].append(
            {
                "name": name,
                "entity_type": entity.entity_type,
                "keys": list(entity.keys),
                "properties": properties,
                "date_fields": entity.date_fields,
                "left_out": [
                    {"name": n, "type": "navigation" if t == NAVIGATION else t}
                    for n, t in entity.left_out.items()
                ],
            }
        )
    return result


def _short_type(edm: str) -> str:
    """`IfsApp.VoucherRowsAnalysis.FndBoolean` -> `FndBoolean`; Edm types as they are."""
    return edm if edm.startswith("Edm.") else edm.rsplit(".", 1)[-1]


def render(description: dict[str, Any]) -> str:
    lines = [f"{description['projection']}.svc at {description['url']}"]
    for entity_set in description["entity_sets"]:
        lines.append("")
        lines.append(
            f"entity set {entity_set['name']} (entity type {entity_set['entity_type']}, "
            f"{len(entity_set['properties'])} properties)"
        )
        lines.append(f"  key: {', '.join(entity_set['keys']) or '(none)'}")
        width = max((len(p["name"]) for p in entity_set["properties"]), default=4)
        type_width = max((len(_short_type(p["type"])) for p in entity_set["properties"]), default=4)
        for prop in entity_set["properties"]:
            notes = []
            if prop.get("key"):
                notes.append("key")
            if "max_length" in prop:
                notes.append(f"MaxLength {prop['max_length']}")
            if "enum" in prop:
                notes.append(f"enum: {', '.join(prop['enum'])}")
            if not prop["nullable"] and not prop.get("key"):
                notes.append("not null")
            lines.append(
                f"  {prop['name']:<{width}}  {_short_type(prop['type']):<{type_width}}"
                f"  {'; '.join(notes)}".rstrip()
            )
        dates = entity_set["date_fields"]
        lines.append(f"  date/timestamp fields (replication_key): {', '.join(dates) or 'none'}")
        if entity_set["left_out"]:
            left = ", ".join(f"{p['name']} ({p['type']})" for p in entity_set["left_out"])
            lines.append(f"  not read by streams (binary, stream, navigation): {left}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tap_ifscloud.errors import TapIFSCloudError

    try:
        config = load_settings(args.config, TAP_SECRETS)
        description = describe(
            config, args.projection, path_prefix=args.path_prefix, entity_set=args.entity_set
        )
    except (ValueError, TapIFSCloudError) as exc:
        print(f"ifs-looker describe: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        print(render(description))
    return 0

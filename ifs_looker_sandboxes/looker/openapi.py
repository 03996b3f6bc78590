"""The Looker API 4.0 spec subset as a validator of requests and responses.

The sandbox checks every request it receives and every response it sends against
`looker-api-4.0-subset.oas.json` (a subset of Looker's published OpenAPI 3.0
spec), so a test that talks to the sandbox also proves the client speaks the
real API. OpenAPI 3.0 schemas are not quite JSON Schema: `nullable: true` and
`type: any` are translated here, once, when the spec is loaded.

Statuses the spec does not list for an operation (401 from an expired token,
500/502/503/504 from a gateway) carry Looker's generic `Error` body.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

SPEC_FILE = "looker-api-4.0-subset.oas.json"
API_PREFIX = "/api/4.0"
ERROR_REF = "#/components/schemas/Error"


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema dialect -> JSON Schema (draft 7)."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if out.get("type") == "any":
        del out["type"]
    if out.get("format") == "any":
        del out["format"]
    if node.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # e.g. /datagroups/{datagroup_id}
    pattern: re.Pattern[str]
    spec: dict

    @property
    def operation_id(self) -> str:
        return self.spec.get("operationId", "")


class OpenApiSpec:
    """Operations of the spec subset; `validate_*` return a list of problems (empty = valid)."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.components = _to_json_schema(document.get("components", {}))
        self.operations: list[Operation] = []
        self._validators: dict[str, jsonschema.Draft7Validator] = {}
        for template, item in document["paths"].items():
            regex = "".join(
                f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template)
            )
            for method, spec in item.items():
                self.operations.append(
                    Operation(method.upper(), template, re.compile(f"^{regex}$"), spec)
                )

    @classmethod
    @functools.cache
    def bundled(cls) -> OpenApiSpec:
        """The spec shipped with the package (loaded once per process)."""
        text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
        return cls(json.loads(text))

    # lookup --------------------------------------------------------------------------------------

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for `method` and an API path (with or without /api/4.0)."""
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
        for operation in self.operations:
            if operation.method != method.upper():
                continue
            match = operation.pattern.match(path)
            if match:
                return operation, match.groupdict()
        return None

    def schema_ref(self, ref: str) -> dict:
        name = ref.rsplit("/", 1)[-1]
        return self.components["schemas"][name]

    def _validate(self, instance: Any, schema: dict) -> list[str]:
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            root = {**_to_json_schema(schema), "components": self.components}
            validator = self._validators[key] = jsonschema.Draft7Validator(root)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<body>'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]

    # requests ------------------------------------------------------------------------------------

    def validate_request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> list[str]:
        """Problems with a request: unknown operation, undeclared query parameters, bad body."""
        found = self.find(method, path)
        if found is None:
            return [f"{method} {path} is not an operation of the Looker API 4.0 subset"]
        operation, _ = found
        problems: list[str] = []
        declared = {p["name"] for p in operation.spec.get("parameters", []) if p["in"] == "query"}
        problems += [
            f"query parameter {name!r} is not declared for {operation.operation_id}"
            for name in (query or {})
            if name not in declared
        ]
        request_body = operation.spec.get("requestBody")
        if request_body is None:
            if body not in (None, b"", "", {}):
                problems.append(f"{operation.operation_id} takes no request body")
            return problems
        media = request_body.get("content", {})
        kind = (content_type or "").split(";")[0].strip()
        if kind not in media:
            problems.append(
                f"{operation.operation_id} body must be one of {sorted(media)}, not {kind!r}"
            )
            return problems
        if body is None:
            if request_body.get("required"):
                problems.append(f"{operation.operation_id} requires a request body")
            return problems
        schema = media[kind]["schema"]
        problems += self._validate(body, schema)
        if "$ref" in schema and isinstance(body, dict):
            properties = self.schema_ref(schema["$ref"]).get("properties", {})
            problems += [
                f"{name}: read-only property sent in a request"
                for name in body
                if properties.get(name, {}).get("readOnly")
            ]
        return problems

    # responses -----------------------------------------------------------------------------------

    def validate_response(
        self,
        method: str,
        path: str,
        status: int,
        body: Any,
        content_type: str | None,
        raw: str | None = None,
    ) -> list[str]:
        """Problems with a response: `body` parsed, `raw` its text.

        Where the spec declares a body of `type: string` (SQL Runner results, whose
        format the request chooses), the instance is the body's text.
        """
        found = self.find(method, path)
        if found is None:
            return [f"{method} {path} is not an operation of the Looker API 4.0 subset"]
        operation, _ = found
        responses = operation.spec.get("responses", {})
        spec = responses.get(str(status))
        if spec is None:
            if status < 400:
                return [f"{operation.operation_id} does not document status {status}"]
            return self._validate(body, {"$ref": ERROR_REF})
        media = spec.get("content")
        if status == 204 or not media:
            return [] if raw in (None, "") else [f"status {status} must have no body"]
        kind = (content_type or "").split(";")[0].strip()
        if kind not in media:
            return [f"content type {kind!r} is not one of {sorted(media)} for status {status}"]
        schema = media[kind]["schema"]
        if schema == {"type": "string"}:
            return self._validate(raw, schema)
        return self._validate(body, schema)

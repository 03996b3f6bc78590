"""The HTTP face of the Looker sandbox: the API 4.0 routes target-looker uses.

  POST   /api/4.0/login                      DELETE /api/4.0/logout (and /api/logout)
  GET    /api/4.0/connections                GET    /api/4.0/connections/{name}
  PUT    /api/4.0/connections/{name}/test
  POST   /api/4.0/sql_queries                POST   /api/4.0/sql_queries/{slug}/run/{format}
  GET    /api/4.0/sql_queries/{slug}
  GET    /api/4.0/datagroups                 GET|PATCH /api/4.0/datagroups/{id}
  GET    /api/4.0/derived_table/{model}/{view}/start
  GET    /api/4.0/derived_table/{materialization_id}/status
  POST|GET /api/4.0/projects/{project_id}/validate
  GET    /api/4.0/user

The official `looker-sdk` ends its session with `DELETE /api/logout` (no version):
the same operation as `DELETE /api/4.0/logout`.

Like Looker: wrong login credentials answer 404, a missing or expired token 401
`Requires authentication.`, SQL errors HTTP 200 with `[{"looker_error": ...}]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

from ..faults import Fault
from ..loopback import SandboxRequestHandler
from .database import SqlError
from .openapi import API_PREFIX

if TYPE_CHECKING:
    from .sandbox import LookerSandbox

DOCS = "https://cloud.google.com/looker/docs/r/api"
JSON = "application/json"
# Paths outside /api/4.0 that Looker serves as a 4.0 operation (looker-sdk logs out here).
UNVERSIONED = {"/api/logout": API_PREFIX + "/logout"}
_encode = msgspec.json.Encoder(enc_hook=str, decimal_format="number").encode


class ApiError(Exception):
    """A Looker error response: `{"message", "documentation_url"}` (+ `errors` for 422)."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS}
        if errors is not None:
            self.body["errors"] = errors


def _validation_error(field: str, code: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        [{"field": field, "code": code, "message": message, "documentation_url": DOCS}],
    )


class LookerHandler(SandboxRequestHandler):
    server_version = "LookerSandbox/26.12"
    sandbox: LookerSandbox

    # dispatch ------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        self._path = unquote(url.path)
        self._api_path = UNVERSIONED.get(self._path, self._path)  # what the spec calls it
        self._query = dict(parse_qsl(url.query, keep_blank_values=True))
        self._status = 0
        self._problems: list[str] = []
        self._logged_body: Any = None
        self._token: str | None = None
        self._recorded = False
        try:
            raw = self.read_body()
            self._route(method, raw)
        except ApiError as exc:
            self._json(exc.status, exc.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # Looker answers 500, it does not drop the connection
            self.log_error("internal error: %r", exc)
            self._json(500, ApiError(500, "Internal server error").body)
        finally:
            if not self._recorded:  # nothing was sent (a dropped connection)
                self._record()

    def _record(self) -> None:
        """Log the request before its response leaves, so a client never outruns the log."""
        self._recorded = True
        self.sandbox.record(
            self.command, self._path, self._query, self._status, self._logged_body, self._problems
        )

    def _route(self, method: str, raw: bytes) -> None:
        if not self._api_path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "Not found")
        if self.inject_fault():
            return
        body = self._parse_body(raw)
        spec = self.sandbox.spec
        found = spec.find(method, self._api_path)
        if found is None:
            raise ApiError(404, "Not found")
        operation, params = found
        if self.sandbox.config.validate:
            self._problems = spec.validate_request(
                method, self._api_path, self._query, body, self.headers.get("Content-Type")
            )
        handler: Callable[..., None] = getattr(self, f"_op_{operation.operation_id}", None)  # type: ignore[assignment]
        if handler is None:
            raise ApiError(404, "Not found")
        if operation.operation_id == "run_sql_query":
            query = self.sandbox.state.queries.get(params["slug"])
            self.sandbox.before_sql_run(params["slug"], query.sql if query else "")
        if operation.operation_id != "login":
            self._token = self.sandbox.tokens.valid(self.headers.get("Authorization"))
            if self._token is None:
                raise ApiError(401, "Requires authentication.")
        if self._problems and operation.spec.get("requestBody"):
            raise _validation_error("<body>", "invalid", "; ".join(self._problems))
        handler(body=body, **params)

    def _parse_body(self, raw: bytes) -> Any:
        if not raw:
            return None
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        text = raw.decode("utf-8", "replace")
        if kind == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(text, keep_blank_values=True))
            self._logged_body = {k: ("***" if "secret" in k else v) for k, v in form.items()}
            return form
        try:
            body = json.loads(text, parse_float=Decimal)
        except ValueError:
            raise ApiError(400, "Request body is not valid JSON") from None
        self._logged_body = body
        return body

    def _send_fault(self, fault: Fault) -> None:
        message = "Too Many Requests" if fault.status == 429 else "Service Unavailable"
        self._json(fault.status, ApiError(fault.status, message).body, fault.headers)

    # authentication ------------------------------------------------------------------------------

    def _op_login(self, body: Any) -> None:
        form = body if isinstance(body, dict) else {}
        client_id = form.get("client_id", self._query.get("client_id"))
        secret = form.get("client_secret", self._query.get("client_secret"))
        lifetime = self.sandbox.config.token_lifetime
        token = self.sandbox.tokens.login(client_id, secret, lifetime)
        if token is None:
            raise ApiError(404, "Not found")  # what Looker answers to wrong credentials
        self._json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": max(1, int(lifetime)),
                "refresh_token": None,
            },
        )

    def _op_logout(self, body: Any) -> None:
        self.sandbox.tokens.logout(self._token or "")
        self._send(204, b"", None)

    def _op_me(self, body: Any) -> None:
        self._json(
            200,
            {"id": "1", "display_name": "API client", "email": None, "can": {"show": True}},
        )

    # connections ---------------------------------------------------------------------------------

    def _database(self, connection_name: str):
        database = self.sandbox.database(connection_name)
        if database is None:
            raise ApiError(404, "Not found")
        return database

    def _op_all_connections(self, body: Any) -> None:
        names = sorted(self.sandbox.config.connections)
        connections = [self._connection_json(name, self._database(name)) for name in names]
        self._json(200, [self._only_fields(c) for c in connections])

    def _only_fields(self, value: dict) -> dict:
        """Looker's `fields` query parameter: a comma-separated list of top-level fields."""
        wanted = {f.strip() for f in self._query.get("fields", "").split(",") if f.strip()}
        return {k: v for k, v in value.items() if k in wanted} if wanted else value

    def _op_connection(self, body: Any, connection_name: str) -> None:
        database = self._database(connection_name)
        self._json(200, self._only_fields(self._connection_json(connection_name, database)))

    def _connection_json(self, connection_name: str, database) -> dict:
        return {
            "name": connection_name,
            **database.describe(),
            "schema": None,
            "ssl": False,
            "verify_ssl": False,
            "pdts_enabled": True,
            "connection_pooling": True,
            "sql_runner_precache_tables": True,
            "sql_writing_with_info_schema": True,
            "query_holding_disabled": False,
            "uses_key_pair_auth": False,
            "uses_oauth": False,
            "uses_service_auth": False,
            "uses_instance_oauth": False,
            "example": False,
            "managed": False,
            "default_bq_connection": False,
            "supports_data_studio_link": False,
            "snippets": [],
            "can": {"index": True, "show": True, "test": True},
        }

    def _op_test_connection(self, body: Any, connection_name: str) -> None:
        database = self._database(connection_name)
        self._json(
            200,
            [
                {
                    "name": name,
                    "status": status,
                    "message": message,
                    "connection_string": None,
                    "can": {},
                }
                for name, status, message in database.test()
            ],
        )

    # SQL Runner ----------------------------------------------------------------------------------

    def _op_create_sql_query(self, body: Any) -> None:
        body = body or {}
        connection_name, sql = body.get("connection_name"), body.get("sql")
        if not connection_name and not body.get("model_name"):
            raise _validation_error(
                "connection_name", "missing", "Either connection_name or model_name is required"
            )
        if not isinstance(sql, str) or not sql.strip():
            raise _validation_error("sql", "missing", "sql is required")
        self._database(connection_name)
        query = self.sandbox.state.new_query(connection_name, sql)
        self._json(200, self._sql_query_json(query))

    def _sql_query_json(self, query) -> dict:
        return {
            "slug": query.slug,
            "sql": query.sql,
            "model_name": None,
            "connection": {"name": query.connection_name, "dialect": None, "snippets": []},
            "plaintext": False,
            "run_count": query.run_count,
            "last_run_at": query.last_run_at,
            "last_runtime": query.last_runtime,
            "browser_limit": 5000,
            "explore_url": None,
            "vis_config": None,
            "can": {"run": True, "download": True},
        }

    def _find_query(self, slug: str):
        query = self.sandbox.state.queries.get(slug)
        if query is None:
            raise ApiError(404, "Not found")
        return query

    def _op_sql_query(self, body: Any, slug: str) -> None:
        self._json(200, self._sql_query_json(self._find_query(slug)))

    def _op_run_sql_query(self, body: Any, slug: str, result_format: str) -> None:
        query = self._find_query(slug)
        if result_format not in ("json", "inline_json"):
            raise ApiError(400, f"Unsupported result format '{result_format}' in this sandbox")
        database = self._database(query.connection_name)
        started = time.perf_counter()  # how long the real database took: measured, not simulated
        try:
            result = database.run(query.sql)
            payload: list[dict] = [
                dict(zip(result.columns, row, strict=True)) for row in result.rows
            ]
        except SqlError as exc:
            payload = [{"looker_error": str(exc)}]
        with self.sandbox.state.lock:
            query.run_count += 1
            query.last_run_at = self.sandbox.time.now().isoformat()
            query.last_runtime = time.perf_counter() - started
        self.sandbox.record_sql(query.connection_name, query.sql, payload)
        if self.sandbox.lose_answer(slug, query.sql):
            self.drop_connection()
            return
        self._send(200, _encode(payload), JSON)

    # datagroups ----------------------------------------------------------------------------------

    def _op_all_datagroups(self, body: Any) -> None:
        with self.sandbox.state.lock:
            groups = [g.as_json() for g in self.sandbox.state.datagroups.values()]
        self._json(200, groups)

    def _datagroup(self, datagroup_id: str):
        group = self.sandbox.state.datagroups.get(datagroup_id)
        if group is None:
            raise ApiError(404, "Not found")
        return group

    def _op_datagroup(self, body: Any, datagroup_id: str) -> None:
        self._json(200, self._datagroup(datagroup_id).as_json())

    def _op_update_datagroup(self, body: Any, datagroup_id: str) -> None:
        group = self._datagroup(datagroup_id)
        body = body or {}
        now = self.sandbox.time.time()
        changes: dict[str, int | None] = {}
        for name in ("stale_before", "triggered_at"):
            if name not in body:
                continue
            value = body[name]
            if value is not None and value > now:
                raise _validation_error(name, "invalid", f"{name} cannot be in the future")
            changes[name] = None if value is None else int(value)
        with self.sandbox.state.lock:
            for name, value in changes.items():
                setattr(group, name, value)
            result = group.as_json()
        self._json(200, result)

    # PDTs ----------------------------------------------------------------------------------------

    def _op_start_pdt_build(self, body: Any, model_name: str, view_name: str) -> None:
        if f"{model_name}/{view_name}" not in self.sandbox.config.pdts:
            raise ApiError(404, f"PDT {model_name}/{view_name} not found")
        build = self.sandbox.state.start_build(
            model_name, view_name, self.sandbox.config.pdt_build_seconds, self.sandbox.time
        )
        self._json(
            200,
            {
                "materialization_id": build.materialization_id,
                "resp_text": f"{model_name}/{view_name}: materialization enqueued",
            },
        )

    def _op_check_pdt_build(self, body: Any, materialization_id: str) -> None:
        build = self.sandbox.state.builds.get(materialization_id)
        if build is None:
            raise ApiError(404, "Not found")
        self._json(
            200,
            {
                "materialization_id": materialization_id,
                "resp_text": build.status(self.sandbox.time),
            },
        )

    # projects ------------------------------------------------------------------------------------

    def _op_validate_project(self, body: Any, project_id: str) -> None:
        if project_id not in self.sandbox.config.projects:
            raise ApiError(404, "Not found")
        started = time.perf_counter()  # the real linting time: measured, not simulated
        errors = self.sandbox.validate_project(project_id)
        result = {
            "errors": errors,
            "models_not_validated": [],
            "project_digest": f"{abs(hash(project_id)):x}",
            "computation_time": round(time.perf_counter() - started, 3),
        }
        with self.sandbox.state.lock:
            self.sandbox.state.validations[project_id] = result
        self._json(200, result)

    def _op_project_validation_results(self, body: Any, project_id: str) -> None:
        """The last validation's result (`stale`: never recomputed here), 204 before any."""
        if project_id not in self.sandbox.config.projects:
            raise ApiError(404, "Not found")
        with self.sandbox.state.lock:
            cached = self.sandbox.state.validations.get(project_id)
        if cached is None:
            self._send(204, b"", None)
            return
        self._json(200, {**cached, "stale": False})

    # plumbing ------------------------------------------------------------------------------------

    def _json(self, status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send(status, _encode(body), JSON, headers)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str | None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        path = getattr(self, "_api_path", self._path)
        if self.sandbox.config.validate and self.sandbox.spec.find(self.command, path):
            text = payload.decode("utf-8")
            parsed = json.loads(text) if content_type == JSON and text else None
            problems = self.sandbox.spec.validate_response(
                self.command, path, status, parsed, content_type, text
            )
            self.sandbox.record_response_problems(self.command, self._path, status, problems)
        self._status = status
        self._record()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        # head and body in one write: split writes meet Nagle + delayed ACK (40 ms a request)
        self._headers_buffer.append(b"\r\n" + payload)
        self.flush_headers()

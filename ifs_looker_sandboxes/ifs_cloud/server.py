"""The HTTP face of the sandbox: IAM token endpoint and OData v4 projections.

Routes follow IFS Cloud:
  POST /auth/realms/<realm>/protocol/openid-connect/token
  GET  /(main|int)/ifsapplications/projection/v1/<Projection>.svc/$metadata
  GET  /(main|int)/ifsapplications/projection/v1/<Projection>.svc/<EntitySet>[(<keys>)]
  PATCH, DELETE on <EntitySet>(<keys>) with If-Match
  HEAD as GET without a body; OPTIONS, TRACE and unknown methods get 405

Hostile input gets IFS's 4xx with its JSON error body, never a 500 or an HTML
page: malformed keys, filters nested too deeply, bad or too large request bodies
(refused unread, see loopback.py), and PATCH values its own `$metadata` forbids
(enum members, Edm.Decimal beyond Precision 130/Scale 65, Edm.Int32 range,
strings beyond MaxLength, timestamps without an offset).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import msgspec

from ..faults import Fault
from ..loopback import SandboxRequestHandler
from .edmx import render_metadata
from .entities import (
    BINARY,
    BOOLEAN,
    DATE,
    DECIMAL,
    INT,
    STREAM,
    STRING,
    TIME_OF_DAY,
    TIMESTAMP,
    EnumType,
    Prop,
)
from .query import (
    INT32,
    QueryError,
    parse_filter,
    parse_non_negative,
    parse_orderby,
    parse_select,
)
from .store import DECODER, ENCODER, EntityTable
from .tokens import TokenError

if TYPE_CHECKING:
    from .sandbox import IfsCloudSandbox

ODATA_PATH = re.compile(
    r"^/(?:main|int)/ifsapplications/projection/v1/(?P<projection>[A-Za-z0-9_]+)\.svc"
    r"(?:/(?P<rest>.*))?$"
)
TOKEN_PATH = re.compile(r"^/auth/realms/(?P<realm>[^/]+)/protocol/openid-connect/token$")
ENTITY_PATH = re.compile(r"^(?P<set>[A-Za-z0-9_]+)(?:\((?P<keys>.*)\))?$")
KEY_PART = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_]\w*)\s*=\s*)?(?P<value>'(?:[^']|'')*'|[^,']+?)\s*(?:,|$)"
)
INTEGER = re.compile(r"[+-]?[0-9]{1,10}")
DECIMAL_LITERAL = re.compile(r"[+-]?[0-9]{1,65}(?:\.[0-9]{1,65})?(?:[eE][+-]?[0-9]{1,3})?")
BASE64URL = re.compile(r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?")
JSON_TYPE = "application/json;odata.metadata=minimal;IEEE754Compatible=false"
DECIMAL_PRECISION, DECIMAL_SCALE = 130, 65  # every Edm.Decimal in $metadata
ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE"
MAX_BODY_BYTES = 1024 * 1024  # IFS PATCH bodies and token forms are a few kilobytes


class HttpError(Exception):
    """An IFS-style error response; `detailed`: the message is also its one detail."""

    def __init__(self, status: int, code: str, message: str, detailed: bool = False) -> None:
        super().__init__(message)
        self.status = status
        details = [{"code": code, "message": message}] if detailed else []
        self.body = {"error": {"code": code, "message": message, "details": details}}


def bad_request(message: str) -> HttpError:
    return HttpError(400, "ODP_BAD_REQUEST", message, detailed=True)


ERROR_CODES = {
    400: "ODP_BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    411: "LENGTH_REQUIRED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    431: "HEADERS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
    505: "HTTP_VERSION_NOT_SUPPORTED",
}


class SandboxHandler(SandboxRequestHandler):
    server_version = "IfsCloudSandbox/1.0"
    sandbox: IfsCloudSandbox
    max_body_bytes = MAX_BODY_BYTES

    def error_body(self, status: int, message: str) -> bytes:
        code = ERROR_CODES.get(status, "ODP_BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
        return ENCODER.encode(HttpError(status, code, message, detailed=True).body)

    def refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._status = status
        if self.command:
            self._record(self.command, status)
        super().refuse(status, message, (("OData-Version", "4.0"), *headers))

    def handle_one_request(self) -> None:
        self._recorded = False  # per request: a connection carries several
        self._method: str | None = None
        super().handle_one_request()

    def _record(self, method: str, status: int) -> None:
        """Log the request once, before its answer goes out: a client that has the
        answer finds the request in `request_log`."""
        if not self._recorded:
            self._recorded = True
            self.sandbox.record(method, self.path, status)

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._method_not_allowed()

    def do_TRACE(self) -> None:
        self._method_not_allowed()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == 501:  # http.server's answer to a method it has no do_ for: a client error here
            self._method_not_allowed()
            return
        super().send_error(code, message, explain)

    def _method_not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, stays unread
        self.refuse(
            405,
            f"The HTTP method '{self.command}' is not allowed.",
            (("Allow", ALLOWED_METHODS),),
        )
        self._linger()

    def _handle(self, method: str) -> None:
        self._status = 0
        self._method = method
        try:
            # read up front, whatever the route: an unread body would corrupt the next request
            self._request_body = self.read_body()
            self._route(method)
        except HttpError as exc:
            self._json(exc.status, exc.body)
        except QueryError as exc:
            self._json(400, HttpError(400, exc.code, str(exc)).body)
        except RecursionError:  # a last line behind the parsers' nesting limits
            self._json(400, bad_request("The request is nested too deeply.").body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # an IFS server answers 500, it does not drop the connection
            self.log_error("internal error: %r", exc)
            self._json(500, HttpError(500, "INTERNAL_ERROR", "Internal server error.").body)
        finally:
            self._record(method, self._status)  # if no answer was sent (a dropped connection)

    def _route(self, method: str) -> None:
        if method == "HEAD":  # answered as GET; `_send` leaves the body out
            method = "GET"
        url = urlsplit(self.path)
        path = unquote(url.path)
        token_match = TOKEN_PATH.match(path)
        if token_match and method == "POST":
            self._token(token_match.group("realm"))
            return
        odata = ODATA_PATH.match(path)
        if odata is None:
            raise HttpError(404, "NOT_FOUND", f"No resource at '{path}'.")
        if self.inject_fault():
            return
        denied = self.sandbox.tokens.check(self.headers.get("Authorization"))
        if denied:
            self._json(
                401,
                HttpError(401, "UNAUTHORIZED", denied).body,
                (("WWW-Authenticate", 'Bearer error="invalid_token"'),),
            )
            return
        projection = self.sandbox.projections_by_name.get(odata.group("projection"))
        if projection is None:
            raise HttpError(404, "NOT_FOUND", "Metadata not found.")
        rest = odata.group("rest") or ""
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if rest == "$metadata" and method == "GET":
            self._send(200, render_metadata(projection), "application/xml")
            return
        if rest == "" and method == "GET":
            self._service_document(projection.name)
            return
        entity_match = ENTITY_PATH.match(rest)
        if entity_match is None or projection.entity_set(entity_match.group("set")) is None:
            raise HttpError(
                404,
                "NOT_FOUND",
                f"The requested resource '{rest}' was not found in projection '{projection.name}'.",
            )
        table = self.sandbox.store.table(projection.name, entity_match.group("set"))
        keys = entity_match.group("keys")
        if keys is None:
            if method != "GET":
                raise HttpError(405, "METHOD_NOT_ALLOWED", f"{method} needs an entity key.")
            self.sandbox.tick()
            self._collection(table, query, url.path)
            return
        key = parse_key(table, keys)
        {"GET": self._get_one, "PATCH": self._patch, "DELETE": self._delete}.get(
            method, self._not_allowed
        )(table, key)

    # faults and auth -----------------------------------------------------------------------------

    def _send_fault(self, fault: Fault) -> None:
        message = "Too many requests." if fault.status == 429 else "Service unavailable."
        self._json(
            fault.status, HttpError(fault.status, "SERVER_BUSY", message).body, fault.headers
        )

    def _token(self, realm: str) -> None:
        if realm != self.sandbox.config.realm:
            self._json(404, {"error": "Realm does not exist"})
            return
        form = dict(parse_qsl(self._request_body.decode("utf-8", "replace")))
        basic = self.headers.get("Authorization", "")
        basic_credentials = basic[len("Basic ") :] if basic.startswith("Basic ") else None
        try:
            body = self.sandbox.tokens.issue(
                form, basic_credentials, self.sandbox.config.token_lifetime
            )
        except TokenError as exc:
            self._json(exc.status, exc.body)
            return
        self._json(200, body, content_type="application/json")

    # reads ---------------------------------------------------------------------------------------

    def _service_document(self, projection: str) -> None:
        sets = self.sandbox.projections_by_name[projection].entity_sets
        self._json(
            200,
            {
                "@odata.context": f"{self.sandbox.base_url}{self._svc_path()}/$metadata",
                "value": [{"name": s.name, "kind": "EntitySet", "url": s.name} for s in sets],
            },
        )

    def _svc_path(self) -> str:
        path = urlsplit(self.path).path
        return path[: path.index(".svc") + 4]

    def _collection(self, table: EntityTable, query: dict[str, str], path: str) -> None:
        unknown = [k for k in query if k.startswith("$") and k not in QUERY_OPTIONS]
        if unknown:
            raise QueryError(f"The query parameter '{unknown[0]}' is not supported.")
        entity, namespace = table.entity, table.namespace
        enums = table.projection_enums
        flt = (
            parse_filter(query["$filter"], entity, namespace, enums) if "$filter" in query else None
        )
        order = parse_orderby(query["$orderby"], entity, namespace) if "$orderby" in query else ()
        select = parse_select(query["$select"], entity, namespace) if "$select" in query else ()
        top = parse_non_negative("$top", query["$top"]) if "$top" in query else None
        skip = parse_non_negative("$skip", query["$skip"]) if "$skip" in query else 0
        count = query.get("$count", "false").lower()
        if count not in ("true", "false"):
            raise QueryError(f"Invalid value '{count}' for $count query option found.")
        page_size = self.sandbox.config.server_page_size
        limit = top if page_size is None else min(page_size, top if top is not None else page_size)

        with self.sandbox.store.lock:
            rows, start = table.scan(flt, table.total_order(order))
            predicate = flt.predicate if flt else None
            page, more, total = collect(rows, start, predicate, skip, limit, count == "true")

        body: dict[str, object] = {"@odata.context": self._context(table, select)}
        if total is not None:
            body["@odata.count"] = total
        value = table.to_json(page, select)  # the etag and keys always, then the $select
        if more and (top is None or len(page) < top):
            next_query = dict(query)
            next_query["$skip"] = str(skip + len(page))
            if top is not None:
                next_query["$top"] = str(top - len(page))
            body["@odata.nextLink"] = f"{self.sandbox.base_url}{path}?{urlencode(next_query)}"
        head = ENCODER.encode(body)[:-1] + b',"value":['
        self._send(200, (head, value, b"]}"), JSON_TYPE)

    def _context(self, table: EntityTable, select: tuple[str, ...]) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return (
            f"{self.sandbox.base_url}{self._svc_path()}/$metadata#{table.entity_set.name}{suffix}"
        )

    def _get_one(self, table: EntityTable, key: tuple) -> None:
        row = table.rows.get(key)
        if row is None:
            raise HttpError(404, "NOT_FOUND", "The requested record does not exist.")
        self._entity(200, table, row)

    def _entity(self, status: int, table: EntityTable, row: msgspec.Struct) -> None:
        body = msgspec.structs.asdict(row)
        etag = body.pop("odata_etag")
        payload = {
            "@odata.context": self._context(table, ()) + "/$entity",
            "@odata.etag": etag,
            **body,
        }
        self._send(status, ENCODER.encode(payload), JSON_TYPE, (("ETag", etag),))

    # writes --------------------------------------------------------------------------------------

    def _patch(self, table: EntityTable, key: tuple) -> None:
        try:
            values = DECODER.decode(self._request_body or b"{}")
        except msgspec.DecodeError as exc:
            raise HttpError(
                400, "ODP_BAD_REQUEST", f"The request body is not valid JSON: {exc}"
            ) from exc
        if not isinstance(values, dict):
            raise HttpError(400, "ODP_BAD_REQUEST", "The request body must be a JSON object.")
        with self.sandbox.store.lock:
            current = table.rows.get(key)
            self._check_if_match(table, current)
            merged = (
                table.as_dict(current)
                if current is not None
                else dict(zip(table.entity.keys, key, strict=True))
            )
            for name, value in values.items():
                if name.startswith("@"):
                    continue
                prop = table.entity.prop(name)
                if prop is None:
                    raise HttpError(
                        400,
                        "ODP_BAD_REQUEST",
                        f"The property '{name}' does not exist on type "
                        f"'{table.namespace}.{table.entity.name}'.",
                    )
                converted = convert(prop, value, table.projection_enums)
                if name in table.entity.keys and converted != merged[name]:
                    raise HttpError(
                        400, "ODP_BAD_REQUEST", f"Key property '{name}' cannot be changed."
                    )
                merged[name] = converted
            now = self.sandbox.time.now().replace(microsecond=0)
            if table.entity.prop("LastModified") is not None:
                merged["LastModified"] = now
            row = table.put(merged, now)
        self._entity(200 if current is not None else 201, table, row)

    def _delete(self, table: EntityTable, key: tuple) -> None:
        with self.sandbox.store.lock:
            current = table.rows.get(key)
            if current is None:
                raise HttpError(404, "NOT_FOUND", "The requested record does not exist.")
            self._check_if_match(table, current)
            table.delete(key)
        self._send(204, b"", JSON_TYPE)

    def _check_if_match(self, table: EntityTable, current: msgspec.Struct | None) -> None:
        if_match = self.headers.get("If-Match")
        if if_match is None or if_match == "*":
            return
        if current is None:
            raise HttpError(404, "NOT_FOUND", "The requested record does not exist.")
        if if_match != current.odata_etag:  # type: ignore[attr-defined]
            raise HttpError(
                412,
                "ODP_PRECONDITION_FAILED",
                "The record has been modified by another user. Refresh and try again.",
            )

    def _not_allowed(self, table: EntityTable, key: tuple) -> None:
        raise HttpError(405, "METHOD_NOT_ALLOWED", f"{self.command} is not allowed here.")

    # plumbing ------------------------------------------------------------------------------------

    def _json(
        self,
        status: int,
        body: object,
        headers: tuple[tuple[str, str], ...] = (),
        content_type: str = JSON_TYPE,
    ) -> None:
        self._send(status, ENCODER.encode(body), content_type, headers)

    def _send(
        self,
        status: int,
        payload: bytes | tuple[bytes, ...],
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Send a response; a tuple payload is written part by part, never concatenated."""
        parts = payload if isinstance(payload, tuple) else (payload,)
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(p) for p in parts)))
        self.send_header("OData-Version", "4.0")
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._record(self._method or self.command, status)
        self.end_headers()
        if self.command == "HEAD":
            return
        for part in parts:
            self.wfile.write(part)


QUERY_OPTIONS = {"$filter", "$orderby", "$select", "$top", "$skip", "$count", "$format"}


def collect(
    rows: list, start: int, predicate: object, skip: int, limit: int | None, want_count: bool
) -> tuple[list, bool, int | None]:
    """Matches from `start`: the page after `skip` up to `limit`, whether more follow, the count."""
    page: list = []
    skipped = 0
    total = 0
    more = False
    for index in range(start, len(rows)):
        row = rows[index]
        if predicate is not None and not predicate(row):  # type: ignore[operator]
            continue
        total += 1
        if skipped < skip:
            skipped += 1
            continue
        if limit is None or len(page) < limit:
            page.append(row)
            continue
        more = True
        if not want_count:
            break
    return page, more, total if want_count else None


def parse_key(table: EntityTable, text: str) -> tuple:
    """`Company='US01',Account='1010'` (or a lone `'P1'` for single keys) -> key tuple.

    Anything else (a value of the wrong type, a name twice, a stray `=`) is IFS's 400.
    """
    values: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = KEY_PART.match(text, pos)
        if match is None or match.end() == pos:
            raise bad_request(f"Invalid key predicate '({text})'.")
        name = match.group("name") or (table.entity.keys[0] if len(table.entity.keys) == 1 else "")
        if name in values:
            raise bad_request(f"The key predicate names '{name}' twice.")
        values[name] = match.group("value").strip()
        pos = match.end()
    if set(values) != set(table.entity.keys):
        raise bad_request(f"The key predicate must name {', '.join(table.entity.keys)}.")
    return tuple(_key_value(table.entity.prop(k), values[k]) for k in table.entity.keys)  # type: ignore[arg-type]


def _key_value(prop: Prop, text: str) -> object:
    if text.startswith("'"):
        return convert(prop, text[1:-1].replace("''", "'"))
    if prop.type == INT and INTEGER.fullmatch(text):
        return convert(prop, int(text))
    if prop.type == DECIMAL and DECIMAL_LITERAL.fullmatch(text):
        return convert(prop, Decimal(text))
    raise bad_request(f"The key value {text} is not a valid {prop.type} literal for '{prop.name}'.")


def check_decimal(prop: Prop, value: Decimal) -> Decimal:
    """A Decimal that fits `Precision="130" Scale="65"`, or IFS's 400."""
    if not value.is_finite():
        raise bad_request(f"The value of '{prop.name}' is not a finite number.")
    _, digits, exponent = value.as_tuple()
    scale = max(0, -exponent)  # type: ignore[operator]
    integer_digits = max(0, len(digits) + exponent)  # type: ignore[operator]
    if scale > DECIMAL_SCALE or integer_digits > DECIMAL_PRECISION - DECIMAL_SCALE:
        raise bad_request(
            f"The value of '{prop.name}' does not fit Edm.Decimal with Precision "
            f"{DECIMAL_PRECISION} and Scale {DECIMAL_SCALE}."
        )
    return value


def convert(prop: Prop, value: object, enums: dict[str, EnumType] | None = None) -> object:
    """A JSON value as the Python value stored for the property, or IFS's 400.

    `enums`: the projection's enum types; a string that is not a member of the property's
    enum is refused.
    """
    if value is None:
        if not prop.nullable:
            raise bad_request(f"'{prop.name}' is mandatory.")
        return None
    if prop.type == STREAM:
        raise bad_request(f"The stream property '{prop.name}' cannot be set in an entity body.")
    try:
        if prop.is_enum or prop.type == STRING:
            if not isinstance(value, str):
                raise TypeError
            if prop.max_length is not None and len(value) > prop.max_length:
                raise bad_request(
                    f"The value of '{prop.name}' is longer than {prop.max_length} characters."
                )
            enum = (enums or {}).get(prop.type) if prop.is_enum else None
            if enum is not None and value not in enum.members:
                raise bad_request(f"'{value}' is not a valid value of enumeration '{prop.type}'.")
            return value
        if (
            prop.type == DECIMAL
            and isinstance(value, (int, Decimal))
            and not isinstance(value, bool)
        ):
            return check_decimal(prop, Decimal(value))
        if prop.type == INT and isinstance(value, int) and not isinstance(value, bool):
            if not INT32[0] <= value <= INT32[1]:
                raise bad_request(f"The value of '{prop.name}' is outside the Edm.Int32 range.")
            return value
        if prop.type == BOOLEAN and isinstance(value, bool):
            return value
        if prop.type == DATE and isinstance(value, str):
            return date.fromisoformat(value)
        if prop.type == TIMESTAMP and isinstance(value, str):
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                raise bad_request(f"The value of '{prop.name}' needs a time zone offset.")
            return stamp.astimezone(UTC)
        if prop.type == TIME_OF_DAY and isinstance(value, str):
            return time.fromisoformat(value)
        if prop.type == BINARY and isinstance(value, str) and BASE64URL.fullmatch(value):
            base64.urlsafe_b64decode(value)
            return value
    except (ValueError, TypeError, OverflowError, InvalidOperation, binascii.Error):
        pass
    raise bad_request(f"Invalid value for '{prop.name}' of type {prop.type}.")

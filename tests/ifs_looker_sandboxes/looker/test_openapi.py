"""The spec subset as a validator: OpenAPI 3.0 quirks translated, bad shapes caught."""

from __future__ import annotations

from ifs_looker_sandboxes.looker.openapi import OpenApiSpec


def test_paths_resolve_to_operations_with_their_parameters() -> None:
    spec = OpenApiSpec.bundled()
    operation, params = spec.find("GET", "/api/4.0/derived_table/ifs/gl_balances/start")
    assert operation.operation_id == "start_pdt_build"
    assert params == {"model_name": "ifs", "view_name": "gl_balances"}
    operation, params = spec.find("GET", "/api/4.0/derived_table/abc123/status")
    assert (operation.operation_id, params) == ("check_pdt_build", {"materialization_id": "abc123"})
    assert spec.find("GET", "/api/4.0/no_such_thing") is None
    assert spec.find("DELETE", "/api/4.0/datagroups/1") is None


def test_nullable_fields_accept_null_and_reject_wrong_types() -> None:
    spec = OpenApiSpec.bundled()
    ok = {"id": "1", "stale_before": None, "triggered_at": 1700000000, "can": {"show": True}}
    assert spec.validate_response("GET", "/api/4.0/datagroups/1", 200, ok, "application/json") == []
    bad = {"id": "1", "stale_before": "yesterday"}
    problems = spec.validate_response("GET", "/api/4.0/datagroups/1", 200, bad, "application/json")
    assert problems == ["stale_before: 'yesterday' is not of type 'integer', 'null'"]


def test_error_bodies_need_message_and_documentation_url() -> None:
    spec = OpenApiSpec.bundled()
    error = {"message": "Requires authentication.", "documentation_url": "https://x/y"}
    # 401 is not listed per operation; it carries Looker's generic Error body
    assert (
        spec.validate_response("GET", "/api/4.0/datagroups", 401, error, "application/json") == []
    )
    problems = spec.validate_response(
        "GET", "/api/4.0/datagroups", 401, {"error": "nope"}, "application/json"
    )
    assert any("'message' is a required property" in p for p in problems)


def test_requests_with_read_only_fields_or_undeclared_parameters_are_flagged() -> None:
    spec = OpenApiSpec.bundled()
    path = "/api/4.0/datagroups/7"
    assert spec.validate_request("PATCH", path, {}, {"stale_before": 1}, "application/json") == []
    assert spec.validate_request(
        "PATCH", path, {}, {"stale_before": 1, "name": "x"}, "application/json"
    ) == ["name: read-only property sent in a request"]
    assert spec.validate_request("GET", "/api/4.0/datagroups", {"limit": "5"}) == [
        "query parameter 'limit' is not declared for all_datagroups"
    ]
    assert spec.validate_request("POST", "/api/4.0/sql_queries", {}, {"sql": 5}, "application/json")
    assert spec.validate_request(
        "POST", "/api/4.0/sql_queries", {}, {"sql": "SELECT 1"}, "text/plain"
    ) == ["create_sql_query body must be one of ['application/json'], not 'text/plain'"]


def test_string_typed_result_bodies_are_checked_as_text() -> None:
    spec = OpenApiSpec.bundled()
    path = "/api/4.0/sql_queries/abc/run/json"
    body = [{"a": 1}]
    assert spec.validate_response("POST", path, 200, body, "application/json", '[{"a":1}]') == []
    assert spec.validate_response("POST", path, 200, body, "application/json", None) != []

"""The OpenAPI document is valid, generated from the schemas, and covers every route."""

from openapi_spec_validator import validate

UNDOCUMENTED = {"static", "docs.docs", "docs.docs_init", "docs.docs_assets", "docs.openapi"}


def test_document_is_valid_openapi(client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"


def test_every_api_route_is_documented(app, client):
    spec = client.get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED or rule.endpoint.startswith("web."):
            continue
        path = rule.rule.replace("<uuid:", "{").replace("<path:", "{").replace("<", "{") \
            .replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (path, method.lower()) not in documented:
                missing.append(f"{method} {rule.rule}")
    assert not missing, f"routes without @doc: {missing}"


def test_schemas_come_from_marshmallow(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    task = schemas["Task"]["properties"]
    assert task["status"]["enum"] == ["created", "assigned", "running", "completed",
                                      "failed", "not_finished"]
    assert task["result"].get("nullable") is True
    assert "seconds" in schemas["SleepRequest"]["required"]


def test_docs_page_is_served_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b"/docs/assets/swagger-ui-bundle.js" in page.data
    assert b"https://" not in page.data  # nothing from a CDN
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_v1_routes_document_openai_errors(client):
    """/v1 answers errors in OpenAI's shape, every other route in the platform's."""
    spec = client.get("/openapi.json").get_json()
    v1 = {p for p in spec["paths"] if p.startswith("/v1/")}
    assert v1 == {"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models",
                  "/v1/models/{model}"}
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            schema = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert schema["$ref"].rsplit("/", 1)[1] == (
                "OpenAIError" if path in v1 else "Error"), path
    upload = spec["components"]["schemas"]["OpenAITranscriptionUpload"]
    assert upload["required"] == ["file", "model"] or set(upload["required"]) == {
        "file", "model"}
    assert "language" not in spec["components"]["schemas"]["OpenAITranslationUpload"][
        "properties"]


def test_transcript_types_and_optional_rotation_bodies_are_documented(client, auth):
    paths = client.get("/openapi.json").get_json()["paths"]
    transcript = paths["/tasks/{task_id}/transcript"]["get"]["responses"]["200"]["content"]
    assert {"text/plain", "application/x-subrip", "text/vtt", "application/json"} <= \
        set(transcript)
    for path in ("/webhooks/{webhook_id}/rotate-secret", "/webhooks/callback-secret/rotate"):
        assert paths[path]["post"]["requestBody"]["required"] is False
    # ... and the API does take a rotation with no body.
    assert client.post("/webhooks/callback-secret/rotate", headers=auth).status_code == 200


def test_submissions_document_the_idempotency_key_and_its_conflicts(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    honouring = {path for path, operations in paths.items()
                 for operation in operations.values()
                 if any(p.get("name") == "Idempotency-Key" for p in operation["parameters"])}
    assert honouring == {"/analyze", "/index", "/diagnostics/sleep"}
    for path in honouring:
        operation = paths[path]["post"]
        header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and header["required"] is False
        assert header["schema"]["maxLength"] == 255
        conflict = operation["responses"]["409"]["description"]
        assert "idempotency_key_reused" in conflict and "idempotency_key_in_use" in conflict
    assert "idempotency" not in paths["/tasks/{task_id}/retry"]["post"]["responses"]["409"][
        "description"]

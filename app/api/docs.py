"""``GET /openapi.json`` (generated) and ``GET /docs`` (Swagger UI, served from the
platform itself: no CDN, so it works on offline machines)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, send_from_directory

from app.auth import public
from app.openapi import build_spec

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hark API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, persistAuthorization: true});
"""


def _assets() -> str:
    import swagger_ui_bundle

    return swagger_ui_bundle.swagger_ui_path


@bp.get("/openapi.json")
@public
def openapi():
    spec = current_app.extensions.get("hark_openapi")
    if spec is None:
        spec = current_app.extensions["hark_openapi"] = build_spec(current_app)
    return jsonify(spec)


@bp.get("/docs")
@public
def docs():
    return Response(PAGE, content_type="text/html; charset=utf-8")


@bp.get("/docs/init.js")
@public
def docs_init():
    return Response(INIT, content_type="text/javascript; charset=utf-8")


@bp.get("/docs/assets/<path:name>")
@public
def docs_assets(name: str):
    return send_from_directory(_assets(), name, max_age=86400)

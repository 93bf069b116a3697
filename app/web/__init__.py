"""The web page at ``/``: plain HTML, CSS and ES modules served by Flask, no build step.

The page and its assets are public; the API key is typed into the page, kept in the
browser's ``localStorage`` and sent as ``x-api-key`` by ``fetch``. The player and the
live stream, which cannot send headers, use signed URLs (``POST /tasks/<id>/links``).
Every response of this blueprint carries a strict Content-Security-Policy (same-origin
only, no inline script).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from app.auth import public

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "media-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# Fixed types, whatever the host's mime.types says: browsers refuse an ES module served
# with a non-JavaScript type once ``nosniff`` is set.
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml"}

bp = Blueprint("web", __name__)


@bp.after_request
def add_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/")
@public
def index():
    response = send_from_directory(STATIC_DIR, "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/assets/<path:filename>")
@public
def static_file(filename: str):
    """``app.js``, ``app.css``, the icon; revalidated by ETag, so edits show at once."""
    response = send_from_directory(STATIC_DIR, filename,
                                   mimetype=CONTENT_TYPES.get(Path(filename).suffix))
    response.headers["Cache-Control"] = "no-cache"
    return response

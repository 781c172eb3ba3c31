"""The review page: a static HTML page with its script and style, served with a strict Content-Security-Policy.

Answers shown on it are untrusted input; the page's script renders them as text, and the policy
lets only the page's own script and style run, so markup inside an answer can never execute.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
FILES = {"review.html": "text/html", "review.js": "text/javascript", "review.css": "text/css"}


def _file(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)


@router.get("/review")
async def review_page() -> FileResponse:
    return _file("review.html")


@router.get("/review/review.js")
async def review_script() -> FileResponse:
    return _file("review.js")


@router.get("/review/review.css")
async def review_style() -> FileResponse:
    return _file("review.css")

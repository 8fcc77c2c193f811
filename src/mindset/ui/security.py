"""Who may use the workbench API: whoever holds the token `mindset ui` printed.

Every /api and /v1 call needs it, as `Authorization: Bearer <token>`, or as `?token=<token>` on any URL once, after
which an HttpOnly, SameSite=Strict cookie carries it (so the page's own requests need nothing, and no other
site can make the browser send it). Without it: 403. Calls that change state are POST with a JSON body
(415 otherwise), so a plain HTML form on another site cannot reach them even with the cookie.
"""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import JSONResponse

COOKIE = "mindset_ui_token"  # + "_<port>": browsers share cookies across ports, and two workbenches have two tokens


def cookie_name(request: Request) -> str:
    return f"{COOKIE}_{request.url.port or 80}"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def presented(request: Request) -> str | None:
    """The token the request carries: header, then query, then cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(cookie_name(request))


def guard(token: str):
    """An HTTP middleware enforcing the rules above; it sets the cookie when a valid ?token= arrives."""

    async def middleware(request: Request, call_next):
        given = presented(request)
        valid = given is not None and secrets.compare_digest(given.encode(), token.encode())
        if request.url.path.startswith(("/api", "/v1")):  # /v1: serve's OpenAI API over original and current (ui/chat.py)
            if not valid:
                return JSONResponse({"error": "this API needs the token mindset ui printed: Authorization: Bearer TOKEN, or open the URL with ?token=TOKEN"}, status_code=403)
            if request.method not in ("GET", "HEAD", "POST"):
                return JSONResponse({"error": f"{request.method} is not used here; reads are GET, changes are POST with JSON"}, status_code=405)
            if request.method == "POST" and request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return JSONResponse({"error": "changes are POST with a JSON body (Content-Type: application/json)"}, status_code=415)
        response = await call_next(request)
        if valid and request.query_params.get("token") and request.cookies.get(cookie_name(request)) != token:
            response.set_cookie(cookie_name(request), token, httponly=True, samesite="strict")
        return response

    return middleware

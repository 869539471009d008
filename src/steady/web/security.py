"""Who may talk to the studio: loopback by default, a token for anything else, and no web page
in the user's browser may drive it (DNS rebinding, CSRF).

Every request passes three checks, in order:
1. Host: on loopback the whole header must be 127.0.0.1, localhost or [::1], optionally with
   `:PORT` (digits only), so a rebinding DNS name pointing at 127.0.0.1 is refused, and so are
   look-alikes such as `[::1]evil.example` or `localhost:80@evil.example`; with --listen any
   host is accepted because the token guards it.
2. Origin / Sec-Fetch-Site: a request a browser marks as coming from another site is refused,
   whatever its method; a request without those headers (curl, A1111 clients) passes.
3. Token (when one is set, always with --listen): `Authorization: Bearer T`, HTTP basic auth
   with T as the password (A1111 clients' --api-auth), the `steady_token` cookie, or `?token=T`
   on a page load (which sets the cookie). Compared in constant time.
Refusals are JSON: {"error": "...", "argument": "..."} with 403 (or 401 for the token).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?")
COOKIE = "steady_token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Guard:
    token: str | None = None  # None: no token needed (loopback only)
    loopback_only: bool = True

    def host_ok(self, host_header: str) -> bool:
        if not self.loopback_only:
            return True
        return LOOPBACK_HOST.fullmatch(host_header.strip().lower()) is not None

    def origin_ok(self, request: Request) -> bool:
        if request.headers.get("sec-fetch-site", "") == "cross-site":
            return False
        origin = request.headers.get("origin")
        if origin is None or origin == "null" and request.method in ("GET", "HEAD"):
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == request.headers.get("host", "").lower()

    def presented_token(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2]
        return request.cookies.get(COOKIE) or request.query_params.get("token")

    def token_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = self.presented_token(request)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


class GuardMiddleware:
    """Pure ASGI middleware (works for streaming responses too)."""

    def __init__(self, app: ASGIApp, guard: Guard):
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self.refusal(request)
        if response is not None:
            await response(scope, receive, send)
            return
        if self.guard.token and request.query_params.get("token") and request.method == "GET" and \
                request.url.path == "/":
            # A page opened with ?token=: keep it in a cookie and drop it from the address bar.
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(COOKIE, self.guard.token, httponly=True, samesite="strict")
            await redirect(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if not self.guard.host_ok(host):
            return JSONResponse({"error": f"host {host[:200]!r} is not this studio's address (use 127.0.0.1)",
                                 "argument": "host", "value": host[:200]}, status_code=403)  # fmt: skip
        if not self.guard.origin_ok(request):
            origin = request.headers.get("origin") or request.headers.get("sec-fetch-site", "")
            return JSONResponse({"error": f"requests from another site ({origin}) are refused",
                                 "argument": "origin"}, status_code=403)  # fmt: skip
        if not self.guard.token_ok(request):
            return JSONResponse({"error": "a token is needed (printed by `steady serve`); send it as "
                                          "'Authorization: Bearer TOKEN' or open /?token=TOKEN",
                                 "argument": "token"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="steady"'})  # fmt: skip
        return None

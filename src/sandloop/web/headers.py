"""Security headers on every answer: no sniffing, no framing, and on the gallery's pages a
content security policy that runs only the app's own script.

The gallery is public and shows text strangers typed. Every text is escaped already; the
policy is the second wall: a script that slipped in would not run, since only scripts from
this origin do (the pages have no inline script), and no page can frame these pages to
click-jack a visitor. FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc with an
inline script, so they get the headers without the policy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
UNPOLICED = ("/docs", "/redoc")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(ALWAYS)
        if not scope["path"].startswith(UNPOLICED):
            extra.append((b"content-security-policy", POLICY.encode()))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, sending)

"""A person's browser, as far as the server can tell: cookies, forms, form tokens.

For the web application's HTTP-level tests (tests/test_webapp.py); the real browser is
in tests/browser.py. Every federation user ``ROLE-NODE`` gets the password ``PASSWORD``
and a TOTP secret (``enrol``), so a test signs in as any role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pyotp

from node.flows import signin
from tests.federation import SimNode

PASSWORD = "correct horse battery staple"
ROLES = ("coordinator", "liaison", "privacy_officer", "source", "admin")
_TOKEN = re.compile(r'name="form_token" value="([0-9a-f]+)"')


def enrol(node: SimNode, roles: tuple[str, ...] = ROLES) -> dict[str, str]:
    """Password and second factor for each role's user at ``node``; role → TOTP secret."""
    secrets = {}
    for role in roles:
        enrolment = signin.set_credentials(
            node.ctx, f"{role}-{node.node_id}", PASSWORD, new_second_factor=True
        )
        assert enrolment is not None
        secrets[role] = enrolment.secret
    return secrets


def code_at(node: SimNode, secret: str, step: int = 0) -> str:
    """The TOTP code for the node's own clock (a ManualClock), ``step`` steps on."""
    return pyotp.TOTP(secret).at(node.clock.now() + timedelta(seconds=30 * step))


@dataclass
class Browser:
    node: SimNode
    session: aiohttp.ClientSession = field(init=False)
    token: str = ""

    def __post_init__(self) -> None:
        # unsafe: the cookie jar keeps cookies of an IP address host (127.0.0.1), as a
        # browser does.
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.node.url + path, **kw) as resp:
            text = await resp.text()
            self._remember(text)
            return resp.status, text, resp

    async def post(
        self,
        path: str,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        token: bool = True,
        **kw: Any,
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        """``data`` as pairs where a field repeats (ticked checkboxes)."""
        body = list(data.items()) if isinstance(data, dict) else list(data or [])
        if token and not any(k == "form_token" for k, _ in body):
            body.append(("form_token", self.token))
        async with self.session.post(self.node.url + path, data=body, **kw) as resp:
            text = await resp.text()
            self._remember(text)
            return resp.status, text, resp

    async def upload(
        self,
        path: str,
        files: dict[str, tuple[str, bytes]],
        data: dict[str, str] | None = None,
        token: bool = True,
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        """A multipart/form-data post, as a browser sends a form with a file field."""
        form = aiohttp.FormData()
        if token:
            form.add_field("form_token", self.token)
        for name, value in (data or {}).items():
            form.add_field(name, value)
        for name, (filename, content) in files.items():
            form.add_field(name, content, filename=filename, content_type="application/json")
        async with self.session.post(self.node.url + path, data=form) as resp:
            text = await resp.text()
            self._remember(text)
            return resp.status, text, resp

    def _remember(self, text: str) -> None:
        found = _TOKEN.search(text)
        if found:
            self.token = found.group(1)

    async def sign_in(
        self, name: str, code: str, password: str = PASSWORD
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        await self.get("/app/aanmelden")
        return await self.post(
            "/app/aanmelden", {"gebruikersnaam": name, "wachtwoord": password, "code": code}
        )

    async def sign_in_as(self, role: str, secret: str, step: int = 0) -> None:
        status, text, resp = await self.sign_in(
            f"{role}-{self.node.node_id}", code_at(self.node, secret, step)
        )
        assert status == 200, text[:500]
        assert resp.url.path == "/app/", text[:500]

    def cookie(self, name: str) -> str | None:
        for c in self.session.cookie_jar:
            if c.key == name:
                return c.value
        return None

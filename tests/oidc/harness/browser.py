"""A headless stand-in for the person at the browser: follows the authorization server's redirects,
fills in and submits its login and consent forms (oidc-provider's development interactions), and
stops at the redirect to the client's callback, whose query it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2


class _Form(HTMLParser):
    """The first form of a page: its action and its inputs (name, type, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: list[dict[str, str]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form:
            self.inputs.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


@dataclass
class Browser:
    """Signs in as `login` and consents to whatever is asked."""

    login: str
    password: str
    redirect_uri: str
    pages: list[str] = field(default_factory=list)

    async def authorize(self, url: str) -> dict[str, str]:
        """Walks from the authorization URL to the callback; returns the callback's query."""
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            resp = await http.get(url)
            for _ in range(20):
                if resp.status_code in (302, 303):
                    target = urljoin(str(resp.url), resp.headers["Location"])
                    if target.startswith(self.redirect_uri):
                        query = parse_qs(urlsplit(target).query)
                        return {k: v[0] for k, v in query.items()}
                    resp = await http.get(target)
                elif resp.status_code == 200 and "<form" in resp.text:
                    action, data = self._submit(str(resp.url), resp.text)
                    resp = await http.post(action, data=data)
                else:
                    raise AssertionError(f"unexpected answer {resp.status_code} at {resp.url}: {resp.text[:500]}")
            raise AssertionError("no redirect to the callback after 20 steps")

    def _submit(self, page_url: str, html: str) -> tuple[str, dict[str, str]]:
        form = _Form()
        form.feed(html)
        assert form.action, f"no form action on {page_url}"
        data: dict[str, str] = {}
        for i in form.inputs:
            name = i.get("name")
            if not name:
                continue
            if i.get("type") == "password":
                data[name] = self.password
            elif name == "login":
                data[name] = self.login
            else:
                data[name] = i.get("value", "")
        self.pages.append(data.get("prompt", "?"))
        return urljoin(page_url, form.action), data

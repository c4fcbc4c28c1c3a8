"""The tools every workspace has: the time, safe arithmetic, and fetching a public web page."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from simpleeval import SimpleEval

MAX_PAGE_CHARS = 8000
MAX_REDIRECTS = 3


class ToolInputError(ValueError):
    """The model asked for something the tool cannot do; the message says what instead."""


def current_datetime(timezone: str = "UTC") -> str:
    """The current date and time in an IANA time zone such as 'Europe/Paris'.

    Args:
        timezone: IANA time zone name; UTC when not given.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolInputError(f"unknown time zone {timezone!r}; use an IANA name like 'Europe/Paris'") from exc
    return datetime.now(zone).strftime("%A %Y-%m-%d %H:%M:%S %Z")


_evaluator = SimpleEval(functions={"abs": abs, "round": round, "min": min, "max": max})


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. '(17 * 23) / 4 + 2 ** 10'.

    Args:
        expression: arithmetic with + - * / // % ** and parentheses; no names or calls beyond abs/round/min/max.
    """
    if len(expression) > 200:
        raise ToolInputError("expression too long (200 characters at most)")
    if re.search(r"\*\*\s*\(?\s*\d{4,}", expression):
        raise ToolInputError("exponent too large")
    try:
        value = _evaluator.eval(expression)
    except ZeroDivisionError as exc:
        raise ToolInputError("division by zero") from exc
    except Exception as exc:
        raise ToolInputError(f"not a valid arithmetic expression: {exc}") from exc
    if not isinstance(value, int | float):
        raise ToolInputError("the expression did not give a number")
    return str(value)


def is_public_address(host: str) -> bool:
    """True when every address the host resolves to is a public one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            return False
    return True


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "noscript"}:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "noscript"} and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    return "\n".join(parser.parts)


async def fetch_url(url: str, *, allow_private: bool = False) -> str:
    """Fetch a web page and return its text. Private, loopback and link-local addresses are refused.

    Args:
        url: an http(s) URL.
    """
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ToolInputError("only http and https URLs can be fetched")
            if not allow_private and not await asyncio.to_thread(is_public_address, parts.hostname):
                raise ToolInputError(f"refusing to fetch {parts.hostname}: not a public address")
            response = await client.get(url)
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            response.raise_for_status()
            body = response.text
            if "html" in response.headers.get("content-type", ""):
                body = html_to_text(body)
            if len(body) > MAX_PAGE_CHARS:
                body = body[:MAX_PAGE_CHARS] + f"\n[... {len(body) - MAX_PAGE_CHARS} more characters]"
            return body
    raise ToolInputError("too many redirects")

"""The tools every workspace has: the time, safe arithmetic, and fetching a public web page."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from simpleeval import SimpleEval

MAX_PAGE_CHARS = 8000
MAX_PAGE_BYTES = 1024 * 1024
"""Read no further: the model only ever sees MAX_PAGE_CHARS of the text anyway."""
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> the addresses to connect to: a seam for tests (a name that "rebinds")."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_public_ip(address: IPAddress) -> bool:
    """A globally routable unicast address, and no IPv6 form (mapped, compatible, 6to4, NAT64, Teredo)
    that carries a private IPv4 address inside."""
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        return all(is_public_ip(inner) for inner in _embedded_ipv4(address))
    return True


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    inner: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return inner


def literal_address(host: str) -> IPAddress | None:
    """An address written in the URL itself, in any form a resolver would accept: `[::127.0.0.1]`,
    `2130706433`, `0x7f.1`, `0177.0.0.1`."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """getaddrinfo in a worker thread: a slow DNS server must not hold the event loop."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


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


async def fetch_url(
    url: str,
    *,
    allow_private: bool = False,
    resolve: Resolver = system_resolve,
    allowed: Callable[[IPAddress], bool] = is_public_ip,
) -> str:
    """Fetch a web page and return its text. Private, loopback and link-local addresses are refused.

    Args:
        url: an http(s) URL.
    """
    policy = (lambda _: True) if allow_private else allowed
    async with httpx.AsyncClient(timeout=10, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = await _checked_target(url, resolve, policy)
            async with client.stream(
                "GET",
                target.pinned_url,
                headers={"Host": target.host_header, "Accept-Encoding": "identity"},
                extensions={"sni_hostname": target.hostname},
            ) as response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                response.raise_for_status()
                body, more = await _read_capped(response)
                text = body.decode(response.encoding or "utf-8", errors="replace")
                if "html" in response.headers.get("content-type", ""):
                    text = html_to_text(text)
                if len(text) > MAX_PAGE_CHARS or more:
                    rest = f"{len(text) - MAX_PAGE_CHARS} more characters" if not more else "the rest of the page"
                    text = text[:MAX_PAGE_CHARS] + f"\n[... {rest}]"
                return text
    raise ToolInputError("too many redirects")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Target:
    """Where one request goes: the checked address, and the name the server and its certificate know."""

    pinned_url: str
    hostname: str
    host_header: str


async def _checked_target(url: str, resolve: Resolver, allowed: Callable[[IPAddress], bool]) -> _Target:
    """Resolve the host once and check every address; the request then goes to the first of them, so a
    second lookup (DNS rebinding) never decides where it connects."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ToolInputError("only http and https URLs can be fetched")
    hostname = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ToolInputError("the URL's port is not a number") from exc
    literal = literal_address(hostname)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await resolve(hostname, port)]
        except (OSError, ValueError) as exc:
            raise ToolInputError(f"cannot resolve {hostname}") from exc
    if not addresses or not all(allowed(a) for a in addresses):
        raise ToolInputError(f"refusing to fetch {hostname}: not a public address")
    address = addresses[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, ""))
    return _Target(pinned_url=pinned, hostname=hostname, host_header=parts.netloc.rpartition("@")[2])


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """At most MAX_PAGE_BYTES of the body (decompressed), and whether more was left unread."""
    decoder = _decoder(response.headers.get("content-encoding", "identity"))
    body = bytearray()
    async for chunk in response.aiter_raw():
        room = MAX_PAGE_BYTES - len(body)
        data = decoder.decompress(chunk, room) if decoder is not None else chunk[:room]
        body += data
        if len(body) >= MAX_PAGE_BYTES:
            return bytes(body), True
    return bytes(body), False


def _decoder(encoding: str) -> zlib._Decompress | None:
    """gzip/deflate decoded with a bound on the output (a small compressed page can be a bomb)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(47)
    raise ToolInputError(f"the page came in an unsupported encoding ({encoding})")

"""Files shared with a message: downloaded from `url_private` with the bot token at once.

The token only ever goes to Slack's own file hosts (or the configured API host, for tests and
proxies), and so do the redirects Parley follows: a redirect anywhere else is refused, not followed, so a
download can never be steered to an internal address. A file larger than the limit is refused before any
byte is fetched. Slack answers an
unauthorised download with its HTML login page and status 200, so HTML where a file was expected
counts as a refusal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from adapters.slack.events import SlackFile
from core.models import Attachment

log = logging.getLogger("parley.slack.files")
SLACK_FILE_HOST_SUFFIXES = (".slack.com", ".slack-edge.com", ".slack-files.com")
REFUSED = "Slack refused the download (is the files:read scope granted?)"
MAX_REDIRECTS = 3
OFF_HOST = "its download link is not on a Slack host"


@dataclass(frozen=True, kw_only=True, slots=True)
class FileFailure:
    """A file Parley could not fetch, with the reason the person is told."""

    name: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Downloads:
    attachments: tuple[Attachment, ...]
    failures: tuple[FileFailure, ...]


def token_may_go_to(url: str, *, extra_hosts: frozenset[str]) -> bool:
    """True for https URLs on Slack's file hosts, or any URL on a host the operator configured."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in extra_hosts:
        return True
    return parts.scheme == "https" and (host == "slack.com" or host.endswith(SLACK_FILE_HOST_SUFFIXES))


def file_hosts(api_url: str | None) -> frozenset[str]:
    """The configured API host (a fake Slack in tests, a proxy in production) is trusted too."""
    host = urlsplit(api_url).hostname if api_url else None
    return frozenset({host.lower()}) if host else frozenset()


async def download_all(
    files: Sequence[SlackFile],
    *,
    http: httpx.AsyncClient,
    token: str,
    max_bytes: int,
    extra_hosts: frozenset[str],
) -> Downloads:
    """Fetch every file concurrently; each one becomes an Attachment or a FileFailure."""
    results = await asyncio.gather(
        *(_download(f, http=http, token=token, max_bytes=max_bytes, extra_hosts=extra_hosts) for f in files)
    )
    return Downloads(
        attachments=tuple(r for r in results if isinstance(r, Attachment)),
        failures=tuple(r for r in results if isinstance(r, FileFailure)),
    )


async def _download(
    file: SlackFile, *, http: httpx.AsyncClient, token: str, max_bytes: int, extra_hosts: frozenset[str]
) -> Attachment | FileFailure:
    limit_mb = max_bytes / 1_000_000
    if file.size is not None and file.size > max_bytes:
        return FileFailure(name=file.name, reason=f"it is larger than the {limit_mb:g} MB limit")
    if not file.url:
        return FileFailure(name=file.name, reason="Slack did not give me a download link for it")
    url = file.url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            if not token_may_go_to(url, extra_hosts=extra_hosts):
                return FileFailure(name=file.name, reason=OFF_HOST)
            headers = {"Authorization": f"Bearer {token}"}
            async with http.stream("GET", url, headers=headers, follow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                return await _read(file, response, max_bytes=max_bytes)
    except httpx.HTTPError as exc:
        log.warning("file download failed: %s", type(exc).__name__)
        return FileFailure(name=file.name, reason="the download failed")
    return FileFailure(name=file.name, reason="Slack redirected the download too many times")


async def _read(file: SlackFile, response: httpx.Response, *, max_bytes: int) -> Attachment | FileFailure:
    """The body of a final (non-redirect) answer, refused past `max_bytes` while it streams."""
    limit_mb = max_bytes / 1_000_000
    if response.status_code != 200:
        return FileFailure(name=file.name, reason=f"Slack answered the download with {response.status_code}")
    served = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if served == "text/html" and (file.mimetype or "").lower() != "text/html":
        return FileFailure(name=file.name, reason=REFUSED)
    data = bytearray()
    async for block in response.aiter_bytes():
        data.extend(block)
        if len(data) > max_bytes:
            return FileFailure(name=file.name, reason=f"it is larger than the {limit_mb:g} MB limit")
    return Attachment(name=file.name, data=bytes(data), content_type=file.mimetype)

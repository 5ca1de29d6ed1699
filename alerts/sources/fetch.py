"""Fetching a feed or calendar over HTTP: conditional GET, a size cap, one-line errors.

The only module of the collectors that touches the network; parsers get the bytes it returns.
In a demo config (`demo = true`) the client also reads `file://` URLs, the sample feeds
`alerts demo` leaves in its folder (only the demo adds such sources), so that they are still
collected, through the same conditional GET, once the demo has ended.
"""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from alerts.core.config import Settings
from alerts.sources.registry import SourceError

ACCEPT = (
    "application/rss+xml, application/atom+xml, text/calendar, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


class HTTPStatusError(SourceError):
    """The server answered with an error status; `status` lets a caller say what it means."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchResult:
    """What a GET brought back; `modified` is False on 304 (then `content` is empty)."""

    modified: bool
    content: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None


class DemoFiles(httpx.BaseTransport):
    """HTTP as usual, and `file://` URLs answered from the file: its modification time as
    Last-Modified, 304 when If-Modified-Since still matches it, 404 when it is gone."""

    def __init__(self) -> None:
        self.http = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "file":
            return self.http.handle_request(request)
        if request.url.host not in ("", "localhost"):
            return httpx.Response(404)
        path = Path(url2pathname(request.url.path))
        try:
            modified = formatdate(path.stat().st_mtime, usegmt=True)
            if request.headers.get("If-Modified-Since") == modified:
                return httpx.Response(304, headers={"Last-Modified": modified})
            content = path.read_bytes()
        except OSError:
            return httpx.Response(404)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return httpx.Response(200, content=content,
                              headers={"Last-Modified": modified, "Content-Type": kind})

    def close(self) -> None:
        self.http.close()


def make_client(settings: Settings) -> httpx.Client:
    """An HTTP client with the configured timeout and User-Agent; the caller closes it. In a
    demo config it reads the demo's `file://` sources too."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.sources.fetch_timeout),
        headers={"User-Agent": settings.sources.user_agent, "Accept": ACCEPT},
        follow_redirects=True,
        transport=DemoFiles() if settings.demo else None,
    )


def fetch(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int = 5_000_000,
    max_seconds: float = 120.0,
) -> FetchResult:
    """GET `url`, sending the validators of the last fetch; raise SourceError on any failure.

    The client's timeout bounds each read; `max_seconds` bounds the whole download, so a
    server that drips a byte at a time cannot hold a collection round for long.
    """
    deadline = time.monotonic() + max_seconds
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code == 304:
                return FetchResult(
                    modified=False,
                    content=b"",
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                    content_type=None,
                )
            if not response.is_success:
                reason = f" {response.reason_phrase}" if response.reason_phrase else ""
                raise HTTPStatusError(
                    response.status_code,
                    f"the server answered HTTP {response.status_code}{reason}",
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise SourceError(_too_large(max_bytes))
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(_too_large(max_bytes))
                if time.monotonic() > deadline:
                    raise SourceError(f"the download took longer than {max_seconds:g} s")
                chunks.append(chunk)
            return FetchResult(
                modified=True,
                content=b"".join(chunks),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                content_type=response.headers.get("Content-Type"),
            )
    except httpx.TimeoutException as exc:
        raise SourceError(f"timed out after {_seconds(client, exc)} s") from None
    except httpx.ConnectError as exc:
        raise SourceError(f"could not connect to {_host(url)}: {_reason(exc)}") from None
    except httpx.TooManyRedirects:
        raise SourceError("too many redirects") from None
    except httpx.InvalidURL as exc:
        raise SourceError(f"{url!r} is not a valid URL: {_reason(exc)}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"could not fetch {url}: {_reason(exc)}") from None


def _too_large(max_bytes: int) -> str:
    return f"the response is larger than {max_bytes:,} bytes"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _reason(exc: Exception) -> str:
    """The exception's message on one line, without the "[Errno 111]" noise."""
    text = " ".join(str(exc).split())
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text or type(exc).__name__


def _seconds(client: httpx.Client, exc: httpx.TimeoutException) -> str:
    timeout = client.timeout
    if isinstance(exc, httpx.ConnectTimeout):
        value = timeout.connect
    elif isinstance(exc, httpx.WriteTimeout):
        value = timeout.write
    elif isinstance(exc, httpx.PoolTimeout):
        value = timeout.pool
    else:
        value = timeout.read
    return "?" if value is None else f"{value:g}"

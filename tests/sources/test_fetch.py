import httpx
import pytest

from alerts.sources.fetch import fetch
from alerts.sources.registry import SourceError
from tests.servers import FeedServer


def test_a_download_that_outlasts_its_deadline_is_abandoned(feeds: FeedServer) -> None:
    url = feeds.put("/slow.rss", b"<rss/>" * 50_000)
    with httpx.Client() as client, pytest.raises(SourceError, match="took longer than 0 s"):
        fetch(client, url, etag=None, last_modified=None, max_seconds=0.0)


def test_a_download_within_its_deadline_is_kept(feeds: FeedServer) -> None:
    url = feeds.put("/quick.rss", b"<rss/>" * 50_000)
    with httpx.Client() as client:
        assert len(fetch(client, url, etag=None, last_modified=None).content) == 300_000

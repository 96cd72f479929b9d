"""The page's routes without a browser: page and files served, report pictures whitelisted."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from web_testing import ThreadedServer


def test_page_and_static_files_are_served(web_server: ThreadedServer) -> None:
    page = httpx.get(web_server.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/web/app.js"' in page.text
    for path, kind in [
        ("/web/app.js", "javascript"),
        ("/web/styles.css", "text/css"),
        ("/web/favicon.svg", "image/svg+xml"),
        ("/web/index.html", "text/html"),  # the page again: with the same policy
    ]:
        response = httpx.get(web_server.url + path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
        assert (
            response.headers["content-security-policy"] == page.headers["content-security-policy"]
        )
    assert httpx.head(web_server.url + "/").status_code == 200


def test_page_config_names_the_key_header_and_blind_share(web_server: ThreadedServer) -> None:
    config = httpx.get(web_server.url + "/v1/web/config").json()
    assert config["api_key_header"] == "X-API-Key"
    assert config["blind_review_share"] == 0.0


def test_report_pictures_of_the_serving_version(web_server: ThreadedServer) -> None:
    listing = httpx.get(web_server.url + "/v1/model/report").json()
    names = {p["name"] for p in listing["pictures"]}
    assert {"f1", "confusion_security", "pr_security", "pr_broad_value"} <= names
    assert listing["version"] == httpx.get(web_server.url + "/v1/model").json()["version"]
    picture = httpx.get(web_server.url + "/v1/model/report/confusion_security.png")
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/model/report/metrics.png",
        "/v1/model/report/confusion_unknown.png",
        "/v1/model/report/..%2Fmanifest.png",
        "/v1/model/report/..%2F..%2FCURRENT.png",
        "/v1/model/report/%2Fetc%2Fpasswd.png",
        "/v1/model/report/f1.PNG",
        "/v1/model/report/f1.png%00",
        "/web/..%2F..%2Fsettings.py",
        "/web/%2E%2E/webpage.py",
    ],
)
def test_nothing_outside_the_whitelist_is_served(web_server: ThreadedServer, path: str) -> None:
    # Send the path as is: httpx would normalise "..", and a browser may not.
    with httpx.Client(base_url=web_server.url) as client:
        request = client.build_request("GET", path)
        request.url = request.url.copy_with(raw_path=path.encode())
        response = client.send(request)
    assert response.status_code == 404, (path, response.status_code)
    assert b"Settings" not in response.content and b"root:" not in response.content

"""The playground page is served by the server itself, with nothing from the network."""

from __future__ import annotations

import re

import httpx
import pytest

from server.routes.playground import PAGE_DIR


@pytest.mark.parametrize("path", ["/", "/playground"])
def test_the_page_and_its_files_are_served(scripted_server, path):
    page = httpx.get(f"{scripted_server.base_url}{path}", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/playground/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/playground/static/app.js", "/playground/static/style.css"]
    for asset in assets:
        assert httpx.get(f"{scripted_server.base_url}{asset}", timeout=10).status_code == 200


def test_the_page_needs_no_network():
    for path in PAGE_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name


def test_every_form_control_has_a_label():
    page = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    controls = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page)
    labelled = set(re.findall(r'<label for="([^"]+)"', page))
    assert controls and set(controls) <= labelled


def test_the_page_can_be_turned_off(own_scripted_server):
    server = own_scripted_server(playground=False)
    assert httpx.get(f"{server.base_url}/", timeout=10).status_code == 404
    assert httpx.get(f"{server.base_url}/playground/static/app.js", timeout=10).status_code == 404

"""A remote model's tokenizer given by URL: fetched over real HTTP on loopback, cached, and the
same tokenizer as the files it came from."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from server.settings import AppConfig
from tests.fakes.tiny_tokenizers import tiny_base_tokenizer, tiny_pilot_tokenizer
from wsd_engine.config import ModelConfig
from wsd_engine.weights.embedded import PrepareError
from wsd_engine.weights.prepare import prepare_config, resolve_model_path
from wsd_engine.weights.tokenizer_url import fetch_tokenizer, fetched_path

TEXT = "Paris is the capital of France; it costs €85.50.\n\nThe dog doesn't mind."


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A folder served over HTTP on loopback: (its URL, the folder, the paths requested)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requested: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder, requested
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("make", [tiny_pilot_tokenizer, tiny_base_tokenizer])
def test_a_fetched_tokenizer_is_the_served_one(file_server, tmp_path, make):
    url, folder, _ = file_server
    original = make()
    original.save_pretrained(folder / "model")
    fetched = AutoTokenizer.from_pretrained(fetch_tokenizer(f"{url}/model", tmp_path / "cache"))
    assert fetched.encode(TEXT) == original.encode(TEXT)
    assert fetched.decode(original.encode(TEXT)) == original.decode(original.encode(TEXT))
    assert fetched.chat_template == original.chat_template
    assert (fetched.bos_token, fetched.eos_token) == (original.bos_token, original.eos_token)


def test_a_fetched_tokenizer_is_reused_without_the_network(file_server, tmp_path):
    url, folder, requested = file_server
    tiny_pilot_tokenizer().save_pretrained(folder)
    first = fetch_tokenizer(url, tmp_path / "cache")
    count = len(requested)
    assert count > 0
    assert fetch_tokenizer(f"{url}/", tmp_path / "cache") == first  # the same folder URL
    assert len(requested) == count


def test_a_folder_without_a_tokenizer_is_a_clear_error(file_server, tmp_path):
    url, folder, requested = file_server
    (folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(PrepareError, match="no tokenizer vocabulary"):
        fetch_tokenizer(url, tmp_path / "cache")
    requested.clear()
    with pytest.raises(PrepareError, match=r"tokenizer_config\.json was not found"):
        fetch_tokenizer(f"{url}/elsewhere", tmp_path / "cache")
    assert requested == ["/elsewhere/tokenizer_config.json"]  # nothing else is tried
    assert not fetched_path(url, tmp_path / "cache").exists()  # nothing half-fetched is kept


def test_an_unreachable_url_is_a_clear_error(tmp_path):
    from server.background import free_port

    url = f"http://127.0.0.1:{free_port()}/model"
    with pytest.raises(PrepareError, match="fetching"):
        fetch_tokenizer(url, tmp_path / "cache")


def test_a_config_with_tokenizer_urls_is_prepared_by_fetching(
    file_server, tmp_path, embedded_config: AppConfig
):
    url, folder, _ = file_server
    tiny_pilot_tokenizer().save_pretrained(folder / "pilot")
    tiny_base_tokenizer().save_pretrained(folder / "base")
    pilot, base = (
        ModelConfig(served_model_name=role, url="http://127.0.0.1:9/", tokenizer=f"{url}/{role}")
        for role in ("pilot", "base")
    )
    config = embedded_config.model_copy(update={"pilot": pilot, "base": base})
    root = tmp_path / "cache"
    with pytest.raises(PrepareError, match="run: wsd prepare"):
        resolve_model_path(base, root)
    paths = prepare_config(config, root)
    assert paths == {role: fetched_path(f"{url}/{role}", root) for role in ("pilot", "base")}
    for role, make in (("pilot", tiny_pilot_tokenizer), ("base", tiny_base_tokenizer)):
        assert AutoTokenizer.from_pretrained(paths[role]).encode(TEXT) == make().encode(TEXT)

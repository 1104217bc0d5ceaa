"""A remote model's tokenizer files fetched from a URL (a folder served over HTTP, such as a
Hugging Face `resolve/main/` URL or the model directory of the vLLM server's host), cached.

The folder must hold `tokenizer_config.json` and a vocabulary (`tokenizer.json`, or
`tokenizer.model`, or `vocab.json` with `merges.txt`); the other files a tokenizer may use are
fetched when they are there. A fetched copy is reused without the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import httpx

from wsd_engine.config import cache_dir
from wsd_engine.weights.embedded import PrepareError

logger = logging.getLogger(__name__)

FETCHED_MARKER = "wsd-fetched.json"
REQUIRED_FILE = "tokenizer_config.json"
VOCABULARIES = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"))
OPTIONAL_FILES = (
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "config.json",  # some tokenizer configs name no class; AutoTokenizer then reads the model's
    "generation_config.json",
)
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def is_url(tokenizer: str) -> bool:
    return tokenizer.startswith(("http://", "https://"))


def fetched_path(url: str, root: Path | None = None) -> Path:
    """The folder a URL's tokenizer files are cached in (it may not exist yet)."""
    digest = hashlib.sha256(_folder_url(url).encode()).hexdigest()[:16]
    return (root or cache_dir()) / "tokenizers" / digest


def is_fetched(url: str, root: Path | None = None) -> bool:
    return (fetched_path(url, root) / FETCHED_MARKER).is_file()


def fetch_tokenizer(url: str, root: Path | None = None) -> Path:
    """Download the tokenizer files under `url` once; returns the folder they are cached in."""
    target = fetched_path(url, root)
    if is_fetched(url, root):
        logger.info("tokenizer from %s: cached at %s", url, target)
        return target
    folder = _folder_url(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.tmp-") as work_dir,
        httpx.Client(timeout=_TIMEOUT, follow_redirects=True) as client,
    ):
        work = Path(work_dir) / "files"
        work.mkdir()
        if not _download(client, folder, REQUIRED_FILE, work):
            raise PrepareError(f"no tokenizer at {folder}: {folder}{REQUIRED_FILE} was not found")
        others = [name for name in _other_files() if _download(client, folder, name, work)]
        fetched = [REQUIRED_FILE, *others]
        if not any(all(name in fetched for name in vocabulary) for vocabulary in VOCABULARIES):
            raise PrepareError(
                f"no tokenizer vocabulary at {folder}: it needs tokenizer.json, "
                "tokenizer.model, or vocab.json with merges.txt"
            )
        (work / FETCHED_MARKER).write_text(json.dumps({"url": folder, "files": fetched}, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    logger.info("tokenizer from %s: fetched %s into %s", folder, ", ".join(fetched), target)
    return target


def _folder_url(url: str) -> str:
    return url if url.endswith("/") else f"{url}/"


def _other_files() -> list[str]:
    vocabulary_files = [name for vocabulary in VOCABULARIES for name in vocabulary]
    return [*dict.fromkeys(vocabulary_files), *OPTIONAL_FILES]


def _download(client: httpx.Client, folder: str, name: str, work: Path) -> bool:
    """Fetch one file; False when the folder does not have it."""
    try:
        with client.stream("GET", f"{folder}{name}") as response:
            if response.status_code == httpx.codes.NOT_FOUND:
                return False
            if response.is_error:
                raise PrepareError(f"fetching {folder}{name}: HTTP {response.status_code}")
            with (work / name).open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
    except httpx.TransportError as exc:
        raise PrepareError(f"fetching {folder}{name}: {exc}") from exc
    return True

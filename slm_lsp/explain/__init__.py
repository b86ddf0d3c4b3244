"""The explanation pipeline: hover text, selection explanations and docstrings.

No protocol types here. A hover first resolves the symbol under the cursor with
tree-sitter (``slm_lsp.symbols``) to a definition somewhere in the workspace; the header
(where it is defined, its signature) needs no model. The explanation below it
comes from the local model, prompted with the definition, the function the hover
happened in and the signatures of the definition's callees, and is then checked:
every code name it mentions must exist in that context or in the repository.
Answers are cached by a hash of exactly what was explained, in memory and on disk
per workspace, so an unchanged definition is explained once.

Modules: ``target`` (what is explained), ``router`` (which model explains),
``explainer`` (the pipeline), ``guard`` (checks and cleans the answer),
``docstring`` (docstring edits), ``cache`` (answers on disk).
"""

"""Repository index: walk, chunk, embed, store, search and watch a code repository.

Public API (import from the submodules; this package imports nothing heavy):

- `indexer.index.RepoIndex(root, cache_dir, embedder=None, store=None, max_file_kb=512)`
  with `load()`, `build(progress, cancel) -> IndexStats`, `update_file(path, text)`,
  `remove_file(path)`, `apply_changes(changed, deleted)`, `search(query, k, exclude_paths,
  budget_ms) -> list[SearchResult]`, `stats()`, `save()`; what it returns
  (`IndexProgress`, `IndexStats`, `SearchResult`) is defined in `indexer.records`.
- `indexer.watcher.RepoWatcher(root, callback, debounce_ms=300)` with `start()`/`stop()`.
- `indexer.walker.is_secret_path(path)` and `Walker(root).accepts(path)`.
- `indexer.chunker.chunk_text(path, text, language) -> list[Chunk]`, with the size rules
  (`ChunkLimits`, windows, merging) in `indexer.pieces`.
- `indexer.embedder.Embedder` / `SentenceTransformerEmbedder` / `HashEmbedder` (tests only).
- `indexer.store.VectorStore` / `FaissStore`.

Nothing here imports pygls or `slm_lsp`.
"""

--- slm-lsp: offline inline completion and hover explanations from a local code model.
---
--- Used by `vim.lsp.enable('slm_lsp')` (Neovim 0.11+). The config comes from the plugin's
--- options (`require('slm_lsp').setup(opts)`, or the defaults when setup was not called):
---
--- - cmd: `slm-lsp serve` (from `opts.cmd`, `opts.venv`, PATH, $VIRTUAL_ENV or ./.venv)
--- - filetypes: nil, so every file (set `opts.filetypes` to narrow it)
--- - root_markers: `.git`, `.hg`, `pyproject.toml`, `package.json`, `go.mod`, `Cargo.toml`
--- - settings / init_options: `{ slm = { ... } }`, the server's settings section
---
--- Override single fields as usual, e.g. `vim.lsp.config('slm_lsp', { cmd = { ... } })`.

local ok, slm = pcall(require, 'slm_lsp')
if not ok then
  ---@type vim.lsp.Config
  return {
    cmd = { 'slm-lsp', 'serve' },
    root_markers = { '.git' },
    init_options = { slm = vim.empty_dict() },
    settings = { slm = vim.empty_dict() },
  }
end

---@type vim.lsp.Config
return slm.lsp_config()

--- `:checkhealth slm_lsp`: the server executable, the model, and the index.

local M = {}

local health = vim.health

--- Runs a command and returns (exit code, stdout, stderr); code -1 when it cannot start.
---@param argv string[]
---@param timeout_ms integer
---@return integer, string, string
function M.run(argv, timeout_ms)
  local ok, proc = pcall(vim.system, argv, { text = true })
  if not ok then
    return -1, '', tostring(proc)
  end
  local res = proc:wait(timeout_ms)
  return res.code, res.stdout or '', res.stderr or ''
end

--- Parses the JSON line printed by `slm-lsp model verify --json`.
---@param stdout string
---@return table?
function M.parse_verify(stdout)
  for line in vim.gsplit(stdout, '\n', { plain = true, trimempty = true }) do
    local ok, data = pcall(vim.json.decode, line)
    if ok and type(data) == 'table' and data.ok ~= nil then
      return data
    end
  end
  return nil
end

--- slm-lsp's per-user folder (`$SLM_LSP_HOME`, `$XDG_CACHE_HOME/slm-lsp`, `~/.cache/slm-lsp`).
---@return string
function M.cache_root()
  if vim.env.SLM_LSP_HOME and vim.env.SLM_LSP_HOME ~= '' then
    return vim.fn.expand(vim.env.SLM_LSP_HOME)
  end
  local xdg = vim.env.XDG_CACHE_HOME
  local base = (xdg and xdg ~= '') and vim.fn.expand(xdg) or (vim.fn.expand('~') .. '/.cache')
  return base .. '/slm-lsp'
end

--- The server's per-workspace folder for a root (same naming as the server's paths.py).
---@param root string
---@return string
function M.workspace_dir(root)
  local resolved = vim.fn.resolve(vim.fn.fnamemodify(root, ':p')):gsub('/$', '')
  local name = vim.fn.fnamemodify(resolved, ':t')
  return ('%s/workspaces/%s-%s'):format(M.cache_root(), name ~= '' and name or 'root', vim.fn.sha256(resolved):sub(1, 16))
end

--- `slm-lsp model verify --json` for the configured model (`model.path` or `model.name`).
---@param exe string
---@param opts slm_lsp.Options
---@return string[]
function M.verify_argv(exe, opts)
  local argv = { exe, 'model', 'verify', '--json' }
  local model = type(opts.model) == 'table' and opts.model or {}
  if type(model.path) == 'string' and model.path ~= '' then
    vim.list_extend(argv, { '--path', vim.fn.expand(model.path) })
  elseif type(model.name) == 'string' and model.name ~= '' then
    argv[#argv + 1] = model.name
  end
  return argv
end

---@param cmd string[]
---@return string?
local function resolve_exe(cmd)
  local exe = cmd[1]
  if not exe or vim.fn.executable(exe) ~= 1 then
    return nil
  end
  return vim.fn.exepath(exe)
end

function M.check()
  local slm = require('slm_lsp')

  health.start('slm-lsp: Neovim')
  local v = vim.version()
  local version = ('%d.%d.%d'):format(v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.10') ~= 1 then
    health.error('Neovim ' .. version .. ' is too old; slm-lsp needs 0.10 or newer')
  else
    health.ok('Neovim ' .. version)
  end
  local mode = slm.inline_mode()
  if mode == 'native' then
    health.ok('inline suggestions: vim.lsp.inline_completion (native)')
  elseif mode == 'virtual_text' then
    health.ok('inline suggestions: virtual text drawn by the plugin'
      .. (vim.fn.has('nvim-0.12') == 1 and ' (inline.mode)' or ' (no vim.lsp.inline_completion before 0.12)'))
  else
    health.warn('inline suggestions are off (inline.mode = "off")')
  end

  health.start('slm-lsp: server')
  local cmd = slm.server_cmd()
  local exe = resolve_exe(cmd)
  if not exe then
    health.error(('server executable not found: %s'):format(cmd[1] or '(empty cmd)'), {
      'Install it: pip install slm-lsp (in a virtualenv is fine)',
      'Then set cmd = { "/path/to/slm-lsp", "serve" } or venv = "/path/to/venv" in setup()',
    })
    return
  end
  health.ok('server command: ' .. table.concat(cmd, ' ') .. ' (' .. exe .. ')')
  local code, out, err = M.run({ exe, '--version' }, 20000)
  if code == 0 then
    health.info('version: ' .. vim.trim(out ~= '' and out or err))
  end

  health.start('slm-lsp: model')
  local argv = M.verify_argv(exe, slm.options)
  code, out, err = M.run(argv, 120000)
  local verify = M.parse_verify(out)
  if verify and verify.ok then
    health.ok('model verified: ' .. tostring(verify.path))
  elseif verify then
    health.error('model check failed: ' .. tostring(verify.error or 'unknown error'), {
      'Run :SlmInstallModel or `slm-lsp model install` in a terminal',
    })
  else
    health.error(('`%s model verify --json` failed (exit %d): %s'):format(cmd[1], code, vim.trim(err ~= '' and err or out)))
  end

  health.start('slm-lsp: index')
  local clients = vim.lsp.get_clients({ name = 'slm_lsp' })
  if #clients == 0 then
    health.info('no slm-lsp client is running (open a file to start one)')
  end
  for _, client in ipairs(clients) do
    local status = slm.statuses[client.id]
    local root = client.root_dir or (client.config and client.config.root_dir)
    local label = ('client %d (%s)'):format(client.id, root or 'single file')
    if not status then
      health.info(label .. ': no status reported yet')
    elseif status.state == 'error' then
      health.error(label .. ': ' .. status.message)
    elseif status.state == 'indexing' or status.state == 'loading' then
      health.info(('%s: %s %s'):format(label, status.state, status.message))
    elseif status.state == 'disabled' then
      health.warn(label .. ': disabled ' .. status.message)
    else
      health.ok(('%s: %s %s'):format(label, status.state, status.message))
    end
    if root then
      local dir = M.workspace_dir(root)
      if vim.fn.isdirectory(dir) == 1 then
        health.ok('index folder: ' .. dir)
      else
        health.info('no index folder yet: ' .. dir)
      end
    end
  end
  local root = vim.fs.root(0, slm.options.root_markers or { '.git' })
  if #clients == 0 and root then
    local dir = M.workspace_dir(root)
    if vim.fn.isdirectory(dir) == 1 then
      health.ok(('index for %s: %s'):format(root, dir))
    else
      health.info(('no index for %s yet (it is built when the server starts)'):format(root))
    end
  end
end

return M

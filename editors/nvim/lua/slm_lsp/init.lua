--- slm-lsp for Neovim: offline inline completion and hover explanations from a local
--- code model (the `slm-lsp` language server).
---
--- Setup (Neovim 0.10+):
---
--- ```lua
--- require('slm_lsp').setup({
---   -- Plugin options (everything documented in `slm_lsp.Options`):
---   cmd = nil,                 -- server command; default: detected, see `M.server_cmd()`
---   venv = nil,                -- virtualenv holding slm-lsp: runs <venv>/bin/slm-lsp serve
---   filetypes = nil,           -- nil: attach to every file
---   root_markers = { '.git', '.hg', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
---   inline = {
---     mode = 'auto',           -- 'auto' | 'native' | 'virtual_text' | 'off'
---                              -- auto: vim.lsp.inline_completion on 0.12+, else virtual text
---     auto_trigger = true,     -- suggest while typing (otherwise only on keymaps.trigger)
---     debounce_ms = 150,       -- virtual_text mode: wait this long after typing
---     hl_group = 'SlmGhostText', -- virtual_text mode: highlight (links to Comment)
---   },
---   keymaps = {                -- insert mode; false disables one, keymaps = false disables all
---     accept = '<Tab>',        -- accept the suggestion (falls back to a plain <Tab>)
---     accept_line = '<M-l>',   -- accept the next line of it
---     next = '<M-]>',          -- next suggestion
---     prev = '<M-[>',          -- previous suggestion
---     dismiss = '<C-]>',       -- hide it
---     trigger = '<M-\>',       -- ask for a suggestion now
---   },
---   notify_errors = true,      -- vim.notify() when the server reports state "error"
---
---   -- Everything else is the server's `slm` settings section (camelCase keys), e.g.:
---   model = { name = 'qwen2.5-coder-0.5b' },
---   completion = { maxTokens = 64, maxLines = 8 },
---   index = { enabled = true },
---   explain = { enabled = true },
---   logLevel = 'info',
--- })
--- ```
---
--- On Neovim 0.11+ `setup()` registers the config with `vim.lsp.config('slm_lsp', ...)` and
--- calls `vim.lsp.enable('slm_lsp')` (the config also lives in `lsp/slm_lsp.lua`, so
--- `vim.lsp.enable('slm_lsp')` alone works with the defaults). On 0.10 it starts the client
--- from a FileType autocommand with `vim.lsp.start()`.

local M = {}

---@class slm_lsp.InlineOptions
---@field mode? 'auto'|'native'|'virtual_text'|'off' How suggestions are shown.
---@field auto_trigger? boolean Suggest while typing; otherwise only on `keymaps.trigger`.
---@field debounce_ms? integer Virtual-text mode: delay after the last keystroke.
---@field hl_group? string Virtual-text mode: highlight group of the ghost text.

---@class slm_lsp.Keymaps
---@field accept? string|false
---@field accept_line? string|false
---@field next? string|false
---@field prev? string|false
---@field dismiss? string|false
---@field trigger? string|false

---@class slm_lsp.Options
---@field cmd? string[] Server command (default: detected, see `server_cmd()`).
---@field venv? string Virtual environment with slm-lsp installed.
---@field filetypes? string[] Filetypes to attach to; nil means every file.
---@field root_markers? string[] Files or folders that mark the workspace root.
---@field inline? slm_lsp.InlineOptions
---@field keymaps? slm_lsp.Keymaps|false
---@field notify_errors? boolean
---@field [string] any Any other key is an `slm` server setting.

--- Keys that configure the plugin; every other key of the options is an `slm` setting.
M.plugin_keys = {
  cmd = true,
  venv = true,
  filetypes = true,
  root_markers = true,
  inline = true,
  keymaps = true,
  notify_errors = true,
}

---@type slm_lsp.Options
M.defaults = {
  cmd = nil,
  venv = nil,
  filetypes = nil,
  root_markers = { '.git', '.hg', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  inline = {
    mode = 'auto',
    auto_trigger = true,
    debounce_ms = 150,
    hl_group = 'SlmGhostText',
  },
  keymaps = {
    accept = '<Tab>',
    accept_line = '<M-l>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
  },
  notify_errors = true,
}

--- The options in effect (defaults until `setup()` is called).
---@type slm_lsp.Options
M.options = vim.deepcopy(M.defaults)

--- Last `slm/status` per client id: `{ state = ..., message = ... }`.
---@type table<integer, {state: string, message: string}>
M.statuses = {}

local NAME = 'slm_lsp'
local ensure_globals ---@type fun()
local attached = {} ---@type table<integer, integer> bufnr -> client id

--- Merges user options over the defaults.
---@param opts? slm_lsp.Options
---@return slm_lsp.Options
function M.merge(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then
    error('slm_lsp.setup: expected a table, got ' .. type(opts), 2)
  end
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace the defaults instead of being merged index by index.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[key] ~= nil then
      merged[key] = opts[key]
    end
  end
  if opts.keymaps == false then
    merged.keymaps = false
  end
  return merged
end

--- Empty tables encode as JSON arrays; the server expects objects.
---@param value any
---@return any
local function as_objects(value)
  if type(value) ~= 'table' then
    return value
  end
  if next(value) == nil then
    return vim.empty_dict()
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = as_objects(v)
  end
  return out
end

--- The `slm` settings section: every option that is not a plugin option.
---@param opts? slm_lsp.Options
---@return table
function M.slm_settings(opts)
  opts = opts or M.options
  local out = {}
  for key, value in pairs(opts) do
    if not M.plugin_keys[key] then
      out[key] = vim.deepcopy(value)
    end
  end
  return as_objects(out)
end

---@param path string
---@return boolean
local function executable(path)
  return path ~= '' and vim.fn.executable(path) == 1
end

--- The server command: `opts.cmd`, else `<opts.venv>/bin/slm-lsp`, else `slm-lsp` on PATH,
--- else `$VIRTUAL_ENV/bin/slm-lsp`, else `./.venv/bin/slm-lsp`; `{ 'slm-lsp', 'serve' }` when
--- none exists (`:checkhealth slm_lsp` then reports it).
---@param opts? slm_lsp.Options
---@return string[]
function M.server_cmd(opts)
  opts = opts or M.options
  if opts.cmd then
    return vim.deepcopy(opts.cmd)
  end
  local win = vim.fn.has('win32') == 1
  local function in_venv(venv)
    venv = vim.fn.expand(venv)
    return win and (venv .. '\\Scripts\\slm-lsp.exe') or (venv .. '/bin/slm-lsp')
  end
  if opts.venv and opts.venv ~= '' then
    return { in_venv(opts.venv), 'serve' }
  end
  if executable('slm-lsp') then
    return { 'slm-lsp', 'serve' }
  end
  for _, venv in ipairs({ vim.env.VIRTUAL_ENV or '', vim.fn.getcwd() .. '/.venv' }) do
    if venv ~= '' and executable(in_venv(venv)) then
      return { in_venv(venv), 'serve' }
    end
  end
  return { 'slm-lsp', 'serve' }
end

--- Handles the server's `slm/status` notification.
---@param params {state: string, message?: string}
---@param client_id integer
function M.on_status(params, client_id)
  params = type(params) == 'table' and params or {}
  local status = { state = tostring(params.state or 'error'), message = tostring(params.message or '') }
  local previous = M.statuses[client_id]
  M.statuses[client_id] = status
  if
    status.state == 'error'
    and M.options.notify_errors
    and not (previous and previous.state == 'error' and previous.message == status.message)
  then
    vim.notify('slm-lsp: ' .. status.message, vim.log.levels.ERROR)
  end
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'SlmStatus',
    modeline = false,
    data = { client_id = client_id, state = status.state, message = status.message },
  })
end

--- A short status for the statusline, e.g. `SLM: ready` (empty when no client runs).
---@return string
function M.statusline()
  local ids = vim.tbl_keys(M.statuses)
  table.sort(ids)
  local status = ids[#ids] and M.statuses[ids[#ids]]
  if not status then
    return ''
  end
  local text = 'SLM: ' .. status.state
  if status.state == 'indexing' and status.message ~= '' then
    text = text .. ' ' .. status.message
  end
  return text
end

--- The `vim.lsp.Config` for slm-lsp built from the options.
---@param opts? slm_lsp.Options
---@return vim.lsp.Config
function M.lsp_config(opts)
  opts = opts or M.options
  local settings = M.slm_settings(opts)
  return {
    cmd = M.server_cmd(opts),
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    init_options = { slm = settings },
    settings = { slm = settings },
    handlers = {
      ['slm/status'] = function(_, params, ctx)
        M.on_status(params, ctx.client_id)
      end,
    },
    on_attach = function(client, bufnr)
      M.attach(client, bufnr)
    end,
    on_exit = function(_, _, client_id)
      M.statuses[client_id] = nil
    end,
  }
end

--- The inline completion backend for the options: 'native', 'virtual_text' or 'off'.
---@param opts? slm_lsp.Options
---@return 'native'|'virtual_text'|'off'
function M.inline_mode(opts)
  opts = opts or M.options
  local mode = (opts.inline or {}).mode or 'auto'
  if mode == 'auto' then
    return require('slm_lsp.native').available() and 'native' or 'virtual_text'
  end
  if mode == 'native' and not require('slm_lsp.native').available() then
    return 'virtual_text'
  end
  return mode
end

local backends = {} ---@type table<integer, table> bufnr -> backend module

---@param client vim.lsp.Client
---@return boolean
local function has_inline_provider(client)
  local caps = client.server_capabilities or {}
  return caps.inlineCompletionProvider ~= nil and caps.inlineCompletionProvider ~= false
end

--- The backend module (attach/accept/accept_line/cycle/dismiss/trigger/set_auto) for a buffer:
--- native needs a server with `inlineCompletionProvider`; otherwise the virtual-text renderer,
--- which falls back to `textDocument/completion`.
---@param bufnr integer
---@param client? vim.lsp.Client
---@return table
function M.backend(bufnr, client)
  if backends[bufnr] then
    return backends[bufnr]
  end
  if M.inline_mode() == 'native' and (client == nil or has_inline_provider(client)) then
    return require('slm_lsp.native')
  end
  return require('slm_lsp.ghost')
end

--- The slm-lsp client attached to a buffer, if any.
---@param bufnr? integer
---@return vim.lsp.Client?
function M.get_client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local id = attached[bufnr]
  local client = id and vim.lsp.get_client_by_id(id)
  if client then
    return client
  end
  return vim.lsp.get_clients({ name = NAME, bufnr = bufnr })[1]
end

--- Sends a request with the 0.10 (dot) or 0.11+ (method) client API.
---@param client vim.lsp.Client
---@param method string
---@param params table?
---@param handler? fun(err: table?, result: any, ctx: table)
---@param bufnr? integer
---@return boolean, integer?
function M.request(client, method, params, handler, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Cancels a request with either client API.
---@param client vim.lsp.Client
---@param id integer
function M.cancel(client, id)
  if vim.fn.has('nvim-0.11') == 1 then
    client:cancel_request(id)
  else
    client.cancel_request(id)
  end
end

---@param client vim.lsp.Client
---@param method string
---@param params table
local function notify(client, method, params)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- Sends the current `slm` settings to running clients (`workspace/didChangeConfiguration`).
---@param opts? slm_lsp.Options new options (merged over the defaults), or nil to resend
function M.update(opts)
  if opts then
    M.options = M.merge(opts)
    if vim.lsp.config then
      vim.lsp.config(NAME, { settings = { slm = M.slm_settings() } })
    end
  end
  local settings = { slm = M.slm_settings() }
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    client.settings = settings
    notify(client, 'workspace/didChangeConfiguration', { settings = settings })
  end
end

---@param bufnr integer
local function set_keymaps(bufnr)
  local keys = M.options.keymaps
  if not keys then
    return
  end
  local function map(name, fn, fallback)
    local lhs = keys[name]
    if not lhs then
      return
    end
    vim.keymap.set('i', lhs, function()
      if not fn(bufnr) and fallback then
        vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(lhs, true, false, true), 'in', false)
      end
    end, { buffer = bufnr, desc = 'slm-lsp: ' .. name:gsub('_', ' ') })
  end
  map('accept', M.accept, true)
  map('accept_line', M.accept_line, true)
  map('next', M.next, false)
  map('prev', M.prev, false)
  map('dismiss', M.dismiss, true)
  map('trigger', M.trigger, false)
end

--- How long the cursor must rest in Normal mode before the server is told where it is.
M.CURSOR_REST_MS = 400

---@param bufnr integer
local function cursor_group(bufnr)
  return 'slm_lsp.cursor.' .. bufnr
end

--- Reports where the cursor comes to rest (`slm/cursor`) so the server computes the
--- suggestion there before the first keystroke: after a jump to a far line the prompt
--- would otherwise be evaluated from scratch. Insert-mode typing asks for suggestions
--- itself, so only Normal-mode moves, entering Insert mode and entering the buffer are
--- reported, and the cursor of a buffer when the server attaches (while the model still
--- loads, the server keeps it until it can).
---@param client vim.lsp.Client
---@param bufnr integer
local function report_cursor(client, bufnr)
  local group = vim.api.nvim_create_augroup(cursor_group(bufnr), { clear = true })
  local generation = 0
  local function rested()
    generation = generation + 1
    local mine = generation
    vim.defer_fn(function()
      local inline = M.options.inline or {}
      if mine ~= generation or attached[bufnr] ~= client.id or inline.auto_trigger == false
        or vim.api.nvim_get_current_buf() ~= bufnr then
        return
      end
      notify(client, 'slm/cursor', vim.lsp.util.make_position_params(0, client.offset_encoding))
    end, M.CURSOR_REST_MS)
  end
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'InsertEnter', 'BufEnter' }, {
    group = group,
    buffer = bufnr,
    callback = rested,
  })
  rested()
end

--- Called when the server attaches to a buffer: turns on inline completion and keymaps.
---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if attached[bufnr] == client.id then
    return
  end
  attached[bufnr] = client.id
  ensure_globals()
  vim.api.nvim_create_autocmd('LspDetach', {
    buffer = bufnr,
    callback = function(args)
      if args.data and args.data.client_id == client.id then
        attached[bufnr] = nil
        pcall(vim.api.nvim_del_augroup_by_name, cursor_group(bufnr))
        local b = backends[bufnr]
        backends[bufnr] = nil
        if b then
          b.detach(bufnr)
        end
        return true
      end
    end,
  })
  if M.inline_mode() == 'off' then
    return
  end
  local b = M.backend(bufnr, client)
  backends[bufnr] = b
  b.attach(bufnr, client, M.options.inline or {})
  set_keymaps(bufnr)
  report_cursor(client, bufnr)
end

--- Accepts the whole suggestion. Returns false when there is none.
---@param bufnr? integer
---@return boolean
function M.accept(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).accept(buf)
end

--- Accepts the next line of the suggestion. Returns false when there is none.
---@param bufnr? integer
---@return boolean
function M.accept_line(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).accept_line(buf)
end

--- Shows the next suggestion.
---@param bufnr? integer
---@return boolean
function M.next(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).cycle(buf, 1)
end

--- Shows the previous suggestion.
---@param bufnr? integer
---@return boolean
function M.prev(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).cycle(buf, -1)
end

--- Hides the suggestion. Returns false when none was shown.
---@param bufnr? integer
---@return boolean
function M.dismiss(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).dismiss(buf)
end

--- Asks the server for a suggestion at the cursor now.
---@param bufnr? integer
---@return boolean
function M.trigger(bufnr)
  local buf = bufnr or vim.api.nvim_get_current_buf()
  return M.backend(buf).trigger(buf)
end

--- Turns automatic suggestions on or off (nil toggles). Returns the new value.
---@param enable? boolean
---@return boolean
function M.toggle(enable)
  local inline = M.options.inline or {}
  if enable == nil then
    enable = not (inline.auto_trigger ~= false)
  end
  inline.auto_trigger = enable
  M.options.inline = inline
  require('slm_lsp.ghost').set_auto(enable)
  if require('slm_lsp.native').available() then
    require('slm_lsp.native').set_auto(enable)
  end
  return enable
end

--- Runs a server command (`workspace/executeCommand`).
---@param command string
---@param arguments? any[]
---@param on_result? fun(err: table?, result: any)
---@return boolean sent
function M.execute(command, arguments, on_result)
  local client = M.get_client()
  if not client then
    vim.notify('slm-lsp is not attached to this buffer', vim.log.levels.WARN)
    return false
  end
  M.request(client, 'workspace/executeCommand', { command = command, arguments = arguments or {} }, function(err, result)
    if err then
      vim.notify(('slm-lsp: %s failed: %s'):format(command, err.message or vim.inspect(err)), vim.log.levels.ERROR)
    end
    if on_result then
      on_result(err, result)
    end
  end)
  return true
end

--- Turns a `slm.search` result into quickfix entries (understands several shapes).
---@param result any
---@return table[]
function M.search_to_qf(result)
  local items = {}
  local list = type(result) == 'table' and (result.results or result.items or result) or {}
  if type(list) ~= 'table' then
    return items
  end
  for _, hit in ipairs(list) do
    if type(hit) == 'table' then
      local file = hit.path or hit.file or (hit.uri and vim.uri_to_fname(hit.uri))
      local lnum = hit.line or hit.start_line or hit.startLine
        or (hit.range and hit.range.start and hit.range.start.line + 1)
      if file then
        local text = hit.text or hit.snippet or hit.symbol or hit.name or ''
        items[#items + 1] = {
          filename = file,
          lnum = tonumber(lnum) or 1,
          text = (tostring(text):gsub('\n.*', '')),
        }
      end
    end
  end
  return items
end

--- Runs `slm-lsp model install` in a terminal split.
function M.install_model()
  local cmd = M.server_cmd()
  vim.cmd('botright new')
  local argv = { cmd[1], 'model', 'install' }
  if vim.fn.has('nvim-0.11') == 1 then
    vim.fn.jobstart(argv, { term = true })
  else
    vim.fn.termopen(argv)
  end
end

local function create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd('SlmReindex', function()
    M.execute('slm.reindex')
  end, { desc = 'slm-lsp: rebuild the repository index' })
  cmd('SlmSearch', function(args)
    M.execute('slm.search', { args.args }, function(err, result)
      if err then
        return
      end
      local items = M.search_to_qf(result)
      if #items == 0 then
        vim.notify('slm-lsp: no results for ' .. args.args)
        return
      end
      vim.fn.setqflist({}, ' ', { title = 'slm-lsp search: ' .. args.args, items = items })
      vim.cmd('copen')
    end)
  end, { nargs = '+', desc = 'slm-lsp: search the repository index' })
  cmd('SlmToggle', function()
    local on = M.toggle()
    vim.notify('slm-lsp: automatic suggestions ' .. (on and 'on' or 'off'))
  end, { desc = 'slm-lsp: toggle automatic suggestions' })
  cmd('SlmStatus', function()
    local line = M.statusline()
    vim.notify(line ~= '' and line or 'slm-lsp: no server running')
  end, { desc = 'slm-lsp: show the server state' })
  cmd('SlmInstallModel', function()
    M.install_model()
  end, { desc = 'slm-lsp: run `slm-lsp model install` in a terminal' })
end

local globals_done = false

--- Highlight groups and user commands; also done on attach, for `vim.lsp.enable('slm_lsp')`
--- without `setup()`.
ensure_globals = function()
  vim.api.nvim_set_hl(0, 'SlmGhostText', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'SlmGhostTextHint', { link = 'NonText', default = true })
  if not globals_done then
    create_commands()
    globals_done = true
  end
end

--- Starts the client for a buffer on Neovim 0.10 (no vim.lsp.config/enable there).
---@param bufnr integer
local function start_legacy(bufnr)
  if vim.bo[bufnr].buftype ~= '' then
    return
  end
  local opts = M.options
  if opts.filetypes and not vim.tbl_contains(opts.filetypes, vim.bo[bufnr].filetype) then
    return
  end
  local config = M.lsp_config()
  config.name = NAME
  config.root_dir = vim.fs.root(bufnr, opts.root_markers or {})
  config.root_markers = nil
  config.filetypes = nil
  vim.lsp.start(config, { bufnr = bufnr })
end

local did_setup = false

--- Configures and enables slm-lsp.
---@param opts? slm_lsp.Options
function M.setup(opts)
  M.options = M.merge(opts)
  ensure_globals()
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(NAME, M.lsp_config())
    vim.lsp.enable(NAME)
  elseif not did_setup then
    local group = vim.api.nvim_create_augroup('slm_lsp.start', { clear = true })
    vim.api.nvim_create_autocmd('FileType', {
      group = group,
      callback = function(args)
        start_legacy(args.buf)
      end,
    })
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].filetype ~= '' then
        start_legacy(buf)
      end
    end
  end
  did_setup = true
end

return M

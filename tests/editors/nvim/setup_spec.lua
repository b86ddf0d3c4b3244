-- Plugin configuration: option merging, the vim.lsp.Config shape, command detection, status
-- and health helpers. No server needed.
local T = dofile(vim.env.SLM_HARNESS)
local slm = require('slm_lsp')

T.test('defaults are in effect before setup()', function()
  T.eq(slm.options.inline.mode, 'auto')
  T.eq(slm.options.keymaps.accept, '<Tab>')
  T.eq(slm.options.filetypes, nil)
end)

T.test('merge deep-extends nested tables and replaces lists', function()
  local opts = slm.merge({
    inline = { debounce_ms = 50 },
    keymaps = { accept = '<C-y>', dismiss = false },
    root_markers = { 'setup.cfg' },
    completion = { maxTokens = 32 },
  })
  T.eq(opts.inline, { mode = 'auto', auto_trigger = true, debounce_ms = 50, hl_group = 'SlmGhostText' })
  T.eq(opts.keymaps.accept, '<C-y>')
  T.eq(opts.keymaps.dismiss, false)
  T.eq(opts.keymaps.next, '<M-]>')
  T.eq(opts.root_markers, { 'setup.cfg' })
  T.eq(slm.defaults.inline.debounce_ms, 150, 'defaults are not modified')
  T.eq(slm.merge({ keymaps = false }).keymaps, false)
  T.ok(not pcall(slm.merge, 'nope'), 'a non-table is rejected')
end)

T.test('non-plugin options become the slm settings section', function()
  local opts = slm.merge({
    cmd = { 'x', 'serve' },
    model = { name = 'tiny', threads = 2 },
    completion = { maxTokens = 32 },
    logLevel = 'debug',
    index = {},
  })
  local settings = slm.slm_settings(opts)
  T.eq(settings.model, { name = 'tiny', threads = 2 })
  T.eq(settings.completion, { maxTokens = 32 })
  T.eq(settings.logLevel, 'debug')
  T.eq(settings.cmd, nil)
  T.eq(settings.inline, nil)
  T.eq(settings.keymaps, nil)
  T.eq(vim.json.encode(settings.index), '{}', 'empty tables are sent as objects')
  T.eq(vim.json.encode(slm.slm_settings(slm.merge({}))), '{}')
end)

T.test('lsp_config has cmd, root markers, settings and init_options', function()
  local opts = slm.merge({ cmd = { '/opt/slm-lsp', 'serve' }, completion = { maxLines = 3 } })
  local config = slm.lsp_config(opts)
  T.eq(config.cmd, { '/opt/slm-lsp', 'serve' })
  T.eq(config.filetypes, nil, 'no filetypes: every file')
  T.eq(config.root_markers[1], '.git')
  T.eq(config.settings, { slm = { completion = { maxLines = 3 } } })
  T.eq(config.init_options, config.settings)
  T.eq(type(config.handlers['slm/status']), 'function')
  T.eq(type(config.on_attach), 'function')
  T.eq(slm.lsp_config(slm.merge({ filetypes = { 'python' } })).filetypes, { 'python' })
end)

T.test('lsp/slm_lsp.lua returns the config for vim.lsp.enable', function()
  local file = vim.api.nvim_get_runtime_file('lsp/slm_lsp.lua', false)[1]
  T.ok(file, 'lsp/slm_lsp.lua is on the runtimepath')
  local config = dofile(file)
  T.eq(config.cmd[#config.cmd], 'serve')
  T.ok(config.root_markers)
  T.ok(config.settings.slm)
  if vim.lsp.config then
    local resolved = vim.lsp.config.slm_lsp
    T.ok(resolved, 'vim.lsp.config resolves slm_lsp from the runtimepath')
    T.eq(resolved.cmd[#resolved.cmd], 'serve')
  end
end)

T.test('server_cmd: cmd, then venv, then PATH, then $VIRTUAL_ENV', function()
  T.eq(slm.server_cmd(slm.merge({ cmd = { 'a', 'b' } })), { 'a', 'b' })
  T.eq(slm.server_cmd(slm.merge({ venv = '/v' })), { '/v/bin/slm-lsp', 'serve' })
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir .. '/bin', 'p')
  vim.fn.writefile({ '#!/bin/sh', 'exit 0' }, dir .. '/bin/slm-lsp')
  vim.fn.setfperm(dir .. '/bin/slm-lsp', 'rwxr-xr-x')
  local saved_path, saved_venv, saved_cwd = vim.env.PATH, vim.env.VIRTUAL_ENV, vim.fn.getcwd()
  vim.cmd.cd(vim.fn.fnameescape(vim.fn.tempname():match('^(.*)/')))
  vim.env.PATH = '/nonexistent'
  vim.env.VIRTUAL_ENV = dir
  T.eq(slm.server_cmd(slm.merge({})), { dir .. '/bin/slm-lsp', 'serve' })
  vim.env.VIRTUAL_ENV = nil
  T.eq(slm.server_cmd(slm.merge({})), { 'slm-lsp', 'serve' }, 'nothing found: plain name')
  vim.env.PATH = dir .. '/bin:' .. saved_path
  T.eq(slm.server_cmd(slm.merge({})), { 'slm-lsp', 'serve' })
  vim.fn.mkdir(dir .. '/proj/.venv/bin', 'p')
  vim.fn.writefile({ '#!/bin/sh' }, dir .. '/proj/.venv/bin/slm-lsp')
  vim.fn.setfperm(dir .. '/proj/.venv/bin/slm-lsp', 'rwxr-xr-x')
  vim.cmd.cd(vim.fn.fnameescape(dir .. '/proj'))
  vim.env.PATH = '/nonexistent'
  T.eq(slm.server_cmd(slm.merge({})), { vim.fn.getcwd() .. '/.venv/bin/slm-lsp', 'serve' }, './.venv')
  vim.env.PATH, vim.env.VIRTUAL_ENV = saved_path, saved_venv
  vim.cmd.cd(vim.fn.fnameescape(saved_cwd))
end)

T.test('inline_mode picks native only where vim.lsp.inline_completion exists', function()
  local native = vim.fn.has('nvim-0.12') == 1
  T.eq(require('slm_lsp.native').available(), native)
  T.eq(slm.inline_mode(slm.merge({})), native and 'native' or 'virtual_text')
  T.eq(slm.inline_mode(slm.merge({ inline = { mode = 'virtual_text' } })), 'virtual_text')
  T.eq(slm.inline_mode(slm.merge({ inline = { mode = 'native' } })), native and 'native' or 'virtual_text')
  T.eq(slm.inline_mode(slm.merge({ inline = { mode = 'off' } })), 'off')
end)

T.test('slm/status updates statusline and fires User SlmStatus', function()
  local seen = {}
  vim.api.nvim_create_autocmd('User', {
    pattern = 'SlmStatus',
    callback = function(args)
      seen[#seen + 1] = args.data.state
    end,
  })
  local notified = {}
  local orig = vim.notify
  vim.notify = function(msg, level)
    notified[#notified + 1] = { msg, level }
  end
  slm.on_status({ state = 'loading', message = 'qwen' }, 901)
  T.eq(slm.statusline(), 'SLM: loading')
  slm.on_status({ state = 'indexing', message = '3/9 files' }, 901)
  T.eq(slm.statusline(), 'SLM: indexing 3/9 files')
  slm.on_status({ state = 'error', message = 'no model' }, 901)
  slm.on_status({ state = 'error', message = 'no model' }, 901)
  vim.notify = orig
  T.eq(seen, { 'loading', 'indexing', 'error', 'error' })
  T.eq(#notified, 1, 'the same error is notified once')
  T.match(notified[1][1], 'no model')
  slm.statuses[901] = nil
  T.eq(slm.statusline(), '')
end)

T.test('search results become quickfix items', function()
  local items = slm.search_to_qf({
    { path = '/a.py', line = 3, text = 'def a():\n  pass' },
    { uri = 'file:///b.py', range = { start = { line = 9, character = 0 } }, snippet = 'b' },
    { nothing = true },
  })
  T.eq(items, {
    { filename = '/a.py', lnum = 3, text = 'def a():' },
    { filename = '/b.py', lnum = 10, text = 'b' },
  })
  T.eq(#slm.search_to_qf({ results = { { file = '/c.py', start_line = 2 } } }), 1)
  T.eq(slm.search_to_qf(vim.NIL), {})
end)

T.test('health helpers: verify JSON, verify argv, workspace folder naming', function()
  local health = require('slm_lsp.health')
  T.eq(health.parse_verify('noise\n{"path": "/m.gguf", "sha256": "ab", "ok": true}\n'),
    { path = '/m.gguf', sha256 = 'ab', ok = true })
  T.eq(health.parse_verify('not json'), nil)
  T.eq(health.verify_argv('/x/slm-lsp', slm.merge({})), { '/x/slm-lsp', 'model', 'verify', '--json' })
  T.eq(health.verify_argv('s', slm.merge({ model = { name = 'm' } })), { 's', 'model', 'verify', '--json', 'm' })
  T.eq(health.verify_argv('s', slm.merge({ model = { path = '/p.gguf', name = 'm' } })),
    { 's', 'model', 'verify', '--json', '--path', '/p.gguf' })
  if vim.env.SLM_EXPECTED_WORKSPACE_DIR then
    T.eq(health.workspace_dir(vim.env.SLM_WORKSPACE_ROOT), vim.env.SLM_EXPECTED_WORKSPACE_DIR,
      'same folder as slm_lsp.paths.workspace_dir')
  end
end)

T.test('setup() registers commands and the config', function()
  slm.setup({ cmd = { 'true' }, completion = { maxTokens = 7 } })
  for _, name in ipairs({ 'SlmReindex', 'SlmSearch', 'SlmToggle', 'SlmStatus', 'SlmInstallModel' }) do
    T.eq(vim.fn.exists(':' .. name), 2, name)
  end
  T.eq(slm.options.completion, { maxTokens = 7 })
  if vim.lsp.config then
    T.eq(vim.lsp.config.slm_lsp.settings.slm.completion.maxTokens, 7)
    T.eq(vim.lsp.config.slm_lsp.cmd, { 'true' })
    T.ok(vim.lsp.is_enabled == nil or vim.lsp.is_enabled('slm_lsp'))
  end
end)

T.test('checkhealth runs and reports a missing executable', function()
  slm.setup({ cmd = { '/nonexistent/slm-lsp', 'serve' } })
  vim.cmd('checkhealth slm_lsp')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  T.match(text, 'server executable not found')
  vim.cmd('bwipeout!')
end)

T.test('the help file has valid tags', function()
  local doc = vim.env.SLM_PLUGIN_DIR .. '/doc'
  vim.cmd('helptags ' .. vim.fn.fnameescape(doc))
  local tags = table.concat(vim.fn.readfile(doc .. '/tags'), '\n')
  for _, tag in ipairs({ 'slm_lsp.setup()', ':SlmToggle', 'slm_lsp-keys', 'slm_lsp-health' }) do
    T.ok(tags:find(tag, 1, true), tag)
  end
  vim.cmd('help slm_lsp-keys')
  T.eq(vim.bo.filetype, 'help')
  vim.cmd('close')
end)

T.run()

-- Neovim 0.11+: `vim.lsp.enable('slm_lsp')` alone (no setup()) uses lsp/slm_lsp.lua.
local T = dofile(vim.env.SLM_HARNESS)

local cmd = vim.json.decode(assert(vim.env.SLM_SERVER_CMD))

T.test('vim.lsp.enable without setup attaches with the defaults', function()
  vim.lsp.config('slm_lsp', { cmd = cmd })
  vim.lsp.enable('slm_lsp')
  local root = vim.fn.tempname()
  vim.fn.mkdir(root .. '/.git', 'p')
  vim.fn.writefile({ 'x = 1' }, root .. '/m.py')
  vim.cmd.edit(vim.fn.fnameescape(root .. '/m.py'))
  local buf = vim.api.nvim_get_current_buf()
  local client = T.wait(function()
    return vim.lsp.get_clients({ bufnr = buf, name = 'slm_lsp' })[1]
  end, 10000, 'the client')
  T.eq(client.config.cmd, cmd)
  T.eq(client.config.settings, { slm = vim.empty_dict() })
  T.wait(function()
    return require('slm_lsp').get_client(buf)
  end, 5000, 'on_attach from lsp/slm_lsp.lua')
  local maps = {}
  for _, m in ipairs(vim.api.nvim_buf_get_keymap(buf, 'i')) do
    maps[m.lhs] = true
  end
  T.ok(maps['<Tab>'], 'accept keymap')
  T.eq(vim.fn.exists(':SlmToggle'), 2)
  T.ok(next(vim.api.nvim_get_hl(0, { name = 'SlmGhostText' })), 'highlight group defined')
  T.wait(function()
    return require('slm_lsp').statusline() == 'SLM: ready'
  end, 5000, 'slm/status handler from lsp/slm_lsp.lua')
end)

T.run()

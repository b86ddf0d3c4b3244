-- End to end: the plugin, the real `slm-lsp serve` and the real model.
-- Env: SLM_SERVER_CMD (JSON list), SLM_INLINE_MODE, SLM_E2E_FILE (a Python file in a
-- project folder), SLM_E2E_LINE (1-based line whose end is the masked spot).
local T = dofile(vim.env.SLM_HARNESS)
local slm = require('slm_lsp')

local cmd = vim.json.decode(assert(vim.env.SLM_SERVER_CMD))
local mode = vim.env.SLM_INLINE_MODE or 'auto'
local file = assert(vim.env.SLM_E2E_FILE)
local line = tonumber(assert(vim.env.SLM_E2E_LINE))
local timeout = tonumber(vim.env.SLM_E2E_TIMEOUT_MS or '180000')

slm.setup({
  cmd = cmd,
  inline = { mode = mode, debounce_ms = 50 },
  completion = { timeoutMs = 120000, maxTokens = 48 },
  index = { enabled = false },
})

local buf, client, original

local function ghost_text()
  if slm.backend(buf) == require('slm_lsp.native') then
    local ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')
    local marks = vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
    local d = marks[1] and marks[1][4]
    if not d then
      return nil
    end
    local text = ''
    for _, chunk in ipairs(d.virt_text or {}) do
      text = text .. chunk[1]
    end
    for _, l in ipairs(d.virt_lines or {}) do
      text = text .. '\n'
      for _, chunk in ipairs(l) do
        text = text .. chunk[1]
      end
    end
    return text ~= '' and text or nil
  end
  return require('slm_lsp.ghost').shown_text(buf)
end

T.test('slm-lsp serve attaches to a real Python file', function()
  vim.cmd.edit(vim.fn.fnameescape(file))
  buf = vim.api.nvim_get_current_buf()
  T.eq(vim.bo[buf].filetype, 'python')
  original = vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1]
  client = T.wait(function()
    local c = slm.get_client(buf)
    return c and c.initialized and c
  end, 60000, 'the real server to initialize')
  T.ok(client.server_capabilities.inlineCompletionProvider, 'inlineCompletionProvider')
  local want_native = vim.fn.has('nvim-0.12') == 1 and mode == 'auto'
  T.eq(slm.backend(buf) == require('slm_lsp.native'), want_native, 'native backend')
end)

T.test('entering Insert mode at the masked line shows a suggestion', function()
  vim.api.nvim_win_set_cursor(0, { line, #original })
  T.feed('A', 50)
  local text = T.wait(ghost_text, timeout, 'a suggestion from the model')
  io.stdout:write(('# suggestion (%s): %q\n'):format(slm.backend(buf) == require('slm_lsp.native') and 'native' or 'virtual text', text))
  T.ok(vim.trim(text) ~= '', 'non-empty suggestion')
  T.eq(vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1], original, 'the buffer is untouched')
end)

T.test('<Tab> accepts it into the buffer', function()
  T.feed('<Tab>', 50)
  local now = T.wait(function()
    local l = vim.api.nvim_buf_get_lines(buf, line - 1, line, false)[1]
    return l ~= original and l
  end, 5000, 'the accepted suggestion in the buffer')
  io.stdout:write(('# accepted line: %q\n'):format(now))
  T.ok(#now > #original and now:sub(1, #original) == original, 'the line grew: ' .. now)
  T.feed('<Esc>', 50)
end)

T.test('the server reported its state with slm/status', function()
  local status = T.wait(function()
    return slm.statuses[client.id]
  end, 10000, 'an slm/status notification')
  T.ok(status.state ~= 'error', 'state: ' .. status.state .. ' ' .. status.message)
end)

T.test(':checkhealth slm_lsp finds the server and a verified model', function()
  vim.cmd('checkhealth slm_lsp')
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  io.stdout:write('# ' .. report:gsub('\n', '\n# ') .. '\n')
  T.match(report, 'server command: ')
  T.match(report, 'model verified: ')
  T.ok(not report:find('ERROR'), 'no errors in the report')
  vim.cmd('bwipeout!')
end)

T.run()

-- The plugin against a fake language server (tests/editors/fake_lsp_server.py): startup,
-- settings, status, commands, and suggestions while typing in Insert mode.
-- Env: SLM_SERVER_CMD (JSON list), SLM_INLINE_MODE ('auto' | 'native' | 'virtual_text'),
-- SLM_FAKE_NO_INLINE=1 when the server has no inlineCompletionProvider.
local T = dofile(vim.env.SLM_HARNESS)
if vim.env.SLM_DEBUG_FILE then dofile(vim.env.SLM_DEBUG_FILE) end
local slm = require('slm_lsp')

local cmd = vim.json.decode(assert(vim.env.SLM_SERVER_CMD))
local mode = vim.env.SLM_INLINE_MODE or 'auto'
local no_inline = vim.env.SLM_FAKE_NO_INLINE == '1'

local root = vim.fn.tempname()
vim.fn.mkdir(root .. '/.git', 'p')
local file = root .. '/demo.py'
vim.fn.writefile({ 'import os', '', 'value = ' }, file)

if vim.env.SLM_FORCE_LEGACY_START == '1' then
  -- Take the Neovim 0.10 route: no vim.lsp.config/enable, so setup() starts the client
  -- itself with vim.lsp.start() from a FileType autocommand.
  vim.lsp.config = nil
  vim.lsp.enable = nil
end

slm.setup({
  cmd = cmd,
  inline = { mode = mode, debounce_ms = 30 },
  completion = { maxTokens = 16 },
  logLevel = 'debug',
})

local client, buf

local function state()
  local result
  slm.execute('fake.state', {}, function(_, r)
    result = r
  end)
  return T.wait(function()
    return result
  end, 5000, 'fake.state')
end

local function ghost_text()
  if slm.backend(buf) == require('slm_lsp.native') then
    local ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')
    local marks = vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
    if #marks == 0 then
      return nil
    end
    local d = marks[1][4]
    local text = ''
    for _, chunk in ipairs(d.virt_text or {}) do
      text = text .. chunk[1]
    end
    for _, line in ipairs(d.virt_lines or {}) do
      text = text .. '\n'
      for _, chunk in ipairs(line) do
        text = text .. chunk[1]
      end
    end
    return text
  end
  return require('slm_lsp.ghost').shown_text(buf)
end

T.test('the server starts for a Python file and attaches', function()
  vim.cmd.edit(vim.fn.fnameescape(file))
  buf = vim.api.nvim_get_current_buf()
  T.eq(vim.bo[buf].filetype, 'python')
  client = T.wait(function()
    return slm.get_client(buf)
  end, 10000, 'the client to attach')
  T.eq(client.name, 'slm_lsp')
  if vim.env.SLM_FORCE_LEGACY_START == '1' then
    T.eq(#vim.api.nvim_get_autocmds({ group = 'slm_lsp.start' }), 1, 'started by the FileType autocmd')
  end
  T.eq(vim.fs.normalize(client.root_dir or client.config.root_dir), vim.fs.normalize(root))
end)

T.test('the backend is native only on 0.12+ with an inline provider', function()
  local want_native = vim.fn.has('nvim-0.12') == 1 and mode == 'auto' and not no_inline
  T.eq(slm.backend(buf) == require('slm_lsp.native'), want_native)
end)

T.test('settings arrive as initializationOptions and workspace/configuration', function()
  local s = T.wait(function()
    local st = state()
    return st.configuration ~= nil and st.configuration ~= vim.NIL and st
  end, 5000, 'the configuration answer')
  T.eq(s.initializationOptions, { slm = { completion = { maxTokens = 16 }, logLevel = 'debug' } })
  T.eq(s.configuration, { { completion = { maxTokens = 16 }, logLevel = 'debug' } })
end)

T.test('slm/status reaches the statusline', function()
  T.wait(function()
    return slm.statusline() == 'SLM: ready'
  end, 5000, 'status ready')
end)

T.test('the cursor of a buffer is reported with slm/cursor when the server attaches', function()
  local s = T.wait(function()
    local st = state()
    return #st.cursor > 0 and st
  end, 5000, 'slm/cursor')
  T.eq(s.cursor[1], { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 0, character = 0 } })
end)

T.test('a cursor resting in Normal mode is reported with slm/cursor', function()
  T.feed('gg', 50)
  T.feed('2j$', 50)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local s = T.wait(function()
    local st = state()
    return #st.cursor > 1 and st
  end, 5000, 'slm/cursor')
  T.eq(#s.cursor, 2, 'one report for the moves in quick succession')
  T.eq(s.cursor[2], {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row - 1, character = col },
  })
end)

T.test('update() sends workspace/didChangeConfiguration', function()
  slm.update({ cmd = cmd, inline = { mode = mode, debounce_ms = 30 }, completion = { maxTokens = 5 } })
  local s = T.wait(function()
    local st = state()
    local last = st.didChangeConfiguration[#st.didChangeConfiguration]
    return last and last.slm and last.slm.completion and last.slm.completion.maxTokens == 5 and st
  end, 5000, 'didChangeConfiguration')
  T.eq(s.didChangeConfiguration[#s.didChangeConfiguration], { slm = { completion = { maxTokens = 5 } } })
end)

T.test(':SlmReindex and :SlmSearch run the server commands', function()
  vim.cmd('SlmReindex')
  vim.cmd('SlmSearch parse config')
  local s = T.wait(function()
    local st = state()
    return #st.executed >= 2 and st
  end, 5000, 'executed commands')
  T.eq(s.executed[1][1], 'slm.reindex')
  T.eq(s.executed[2], { 'slm.search', { 'parse config' } })
  T.wait(function()
    return #vim.fn.getqflist() == 1
  end, 5000, 'quickfix results')
  T.eq(vim.fn.getqflist()[1].lnum, 3)
  vim.cmd('cclose')
  vim.cmd.buffer(buf)
end)

T.test('typing in Insert mode shows a suggestion', function()
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  T.feed('A', 50)
  T.feed('x', 50)
  local text = T.wait(ghost_text, 8000, 'a suggestion while typing')
  if no_inline then
    T.eq(text, '_completion()')
  else
    T.eq(text, 'FAKE_ONE(1)\nsecond_line()')
  end
  local s = state()
  if no_inline then
    T.ok(s.completionRequests > 0, 'the completion fallback was used')
  else
    T.eq(s.inlineRequests[#s.inlineRequests].triggerKind, 2, 'automatic trigger')
  end
end)

if not no_inline then
  T.test('next shows the second suggestion, prev goes back', function()
    T.feed('<M-]>', 100)
    T.wait(function()
      return ghost_text() and ghost_text():find('_two%(%)')
    end, 3000, 'the second item')
    T.feed('<M-[>', 100)
    T.wait(function()
      return ghost_text() and ghost_text():find('FAKE_ONE')
    end, 3000, 'the first item again')
  end)
end

T.test('dismiss hides it', function()
  T.feed('<C-]>', 50)
  T.wait(function()
    return ghost_text() == nil
  end, 3000, 'the suggestion to disappear')
  T.sleep(300)
  T.eq(ghost_text(), nil, 'and it stays away until the next keystroke')
end)

T.test('<Tab> accepts the suggestion', function()
  T.feed('y', 50)
  T.wait(ghost_text, 8000, 'a new suggestion')
  T.feed('<Tab>', 50)
  T.wait(function()
    return vim.api.nvim_buf_get_lines(buf, 2, 3, false)[1] ~= 'value = xy'
  end, 5000, 'the accepted text')
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  if no_inline then
    T.eq(lines[3], 'value = xy_completion()')
  else
    T.eq({ lines[3], lines[4] }, { 'value = xyFAKE_ONE(1)', 'second_line()' })
  end
  T.feed('<Esc>', 50)
end)

T.test(':SlmToggle turns automatic suggestions off and on', function()
  vim.cmd('SlmToggle')
  T.eq(slm.options.inline.auto_trigger, false)
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { 'z = ' })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(buf), 0 })
  T.feed('A', 50)
  T.feed('q', 400)
  T.eq(ghost_text(), nil, 'no suggestion while typing')
  T.feed('<M-\\>', 50)
  T.wait(ghost_text, 8000, 'a suggestion on the trigger key')
  T.feed('r', 400)
  T.eq(ghost_text(), nil, 'typing drops it and asks for nothing new')
  T.feed('<Esc>', 50)
  vim.cmd('SlmToggle')
  T.eq(slm.options.inline.auto_trigger, true)
end)

T.run()

-- The virtual-text renderer (the 0.10/0.11 path) fed canned LSP responses directly.
local T = dofile(vim.env.SLM_HARNESS)
local ghost = require('slm_lsp.ghost')
require('slm_lsp').setup({ cmd = { 'true' } })

local function setup_buffer(lines, row, col)
  local buf = T.buffer(lines)
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  -- Attach the renderer with a fake client id (no server involved).
  ghost.attach(buf, { id = 424242 }, { auto_trigger = false })
  return buf
end

local function inline(buf, row, col, result)
  return ghost.on_response(buf, {
    row = row, col = col, encoding = 'utf-16', method = 'textDocument/inlineCompletion',
  }, nil, result)
end

local function marks(buf)
  return vim.api.nvim_buf_get_extmarks(buf, ghost.ns, 0, -1, { details = true })
end

T.test('an inline completion response is drawn as an extmark at the cursor', function()
  local buf = setup_buffer({ 'def add(a, b):', '    ret' }, 1, 7)
  T.ok(inline(buf, 1, 7, { items = { { insertText = 'urn a + b' } } }))
  local m = marks(buf)
  T.eq(#m, 1)
  T.eq({ m[1][2], m[1][3] }, { 1, 7 }, 'row, col')
  T.eq(m[1][4].virt_text, { { 'urn a + b', 'SlmGhostText' } })
  T.eq(m[1][4].virt_text_pos, 'inline')
  T.eq(ghost.shown_text(buf), 'urn a + b')
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'def add(a, b):', '    ret' }, 'buffer untouched')
end)

T.test('multi-line suggestions use virt_lines', function()
  local buf = setup_buffer({ 'def f():', '' }, 1, 0)
  T.ok(inline(buf, 1, 0, { { insertText = '    x = 1\n    return x' } }))
  local d = marks(buf)[1][4]
  T.eq(d.virt_text, { { '    x = 1', 'SlmGhostText' } })
  T.eq(d.virt_lines, { { { '    return x', 'SlmGhostText' } } })
  T.eq(ghost.shown_text(buf), '    x = 1\n    return x')
end)

T.test('a range covering typed text shows only the rest', function()
  local buf = setup_buffer({ 'x = compu' }, 0, 9)
  T.ok(inline(buf, 0, 9, { items = { {
    insertText = 'compute(1)',
    range = { start = { line = 0, character = 4 }, ['end'] = { line = 0, character = 9 } },
  } } }))
  T.eq(ghost.shown_text(buf), 'te(1)')
end)

T.test('accept inserts the suggestion and moves the cursor', function()
  local buf = setup_buffer({ 'x = compu' }, 0, 9)
  inline(buf, 0, 9, { items = { {
    insertText = 'compute(1)\ny = 2',
    range = { start = { line = 0, character = 4 }, ['end'] = { line = 0, character = 9 } },
  } } })
  T.ok(ghost.accept(buf))
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'x = compute(1)', 'y = 2' })
  T.eq(vim.api.nvim_win_get_cursor(0), { 2, 5 })
  T.eq(#marks(buf), 0, 'the ghost text is gone')
  T.eq(ghost.accept(buf), false, 'nothing left to accept')
end)

T.test('accept replaces the rest of the range (an auto-inserted closing paren)', function()
  local buf = setup_buffer({ 'print()' }, 0, 6)
  inline(buf, 0, 6, { items = { {
    insertText = 'print("hi")',
    range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 7 } },
  } } })
  T.ok(ghost.accept(buf))
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'print("hi")' })
end)

T.test('accept_line takes one line at a time', function()
  local buf = setup_buffer({ 'def f():', '    ' }, 1, 4)
  inline(buf, 1, 4, { items = { { insertText = 'a = 1\n    return a' } } })
  T.ok(ghost.accept_line(buf))
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'def f():', '    a = 1' })
  T.eq(ghost.shown_text(buf), '\n    return a', 'the rest stays visible')
  T.ok(ghost.accept_line(buf))
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'def f():', '    a = 1', '    return a' })
  T.eq(#marks(buf), 0)
end)

T.test('typing what the suggestion says keeps it; typing something else drops it', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  inline(buf, 0, 4, { items = { { insertText = 'foo(1)' } } })
  vim.api.nvim_buf_set_text(buf, 0, 4, 0, 4, { 'fo' })
  vim.api.nvim_win_set_cursor(0, { 1, 6 })
  T.ok(ghost.render(buf))
  T.eq(ghost.shown_text(buf), 'o(1)')
  vim.api.nvim_buf_set_text(buf, 0, 6, 0, 6, { 'x' })
  vim.api.nvim_win_set_cursor(0, { 1, 7 })
  T.eq(ghost.render(buf), false)
  T.eq(#marks(buf), 0)
end)

T.test('next/prev cycle through items with a counter', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  inline(buf, 0, 4, { items = { { insertText = 'one' }, { insertText = 'two' }, { insertText = 'three' } } })
  T.eq(ghost.shown_text(buf), 'one')
  T.ok(ghost.cycle(buf, 1))
  T.eq(ghost.shown_text(buf), 'two')
  T.eq(marks(buf)[1][4].virt_text[2], { ' (2/3)', 'SlmGhostTextHint' })
  ghost.cycle(buf, 1)
  ghost.cycle(buf, 1)
  T.eq(ghost.shown_text(buf), 'one', 'wraps around')
  ghost.cycle(buf, -1)
  T.eq(ghost.shown_text(buf), 'three')
  T.ok(ghost.accept(buf))
  T.eq(vim.api.nvim_get_current_line(), 'x = three')
end)

T.test('dismiss clears the suggestion', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  inline(buf, 0, 4, { items = { { insertText = 'one' } } })
  T.eq(ghost.dismiss(buf), true)
  T.eq(#marks(buf), 0)
  T.eq(ghost.dismiss(buf), false)
  T.eq(ghost.accept(buf), false)
end)

T.test('empty, null and error responses draw nothing', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  T.eq(inline(buf, 0, 4, { items = {} }), false)
  T.eq(inline(buf, 0, 4, vim.NIL), false)
  T.eq(inline(buf, 0, 4, { items = { { insertText = '' } } }), false)
  T.eq(ghost.on_response(buf, { row = 0, col = 4, encoding = 'utf-16', method = 'textDocument/inlineCompletion' },
    { code = -32603, message = 'boom' }, nil), false)
  T.eq(#marks(buf), 0)
end)

T.test('stale responses (an older request) are ignored', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  ghost.buffers[buf].seq = 5
  T.eq(ghost.on_response(buf, { seq = 4, row = 0, col = 4, encoding = 'utf-16',
    method = 'textDocument/inlineCompletion' }, nil, { items = { { insertText = 'old' } } }), false)
  T.eq(#marks(buf), 0)
end)

T.test('snippet insert texts are shown without placeholders', function()
  local buf = setup_buffer({ 'x = ' }, 0, 4)
  inline(buf, 0, 4, { items = { { insertText = { kind = 'snippet', value = 'f(${1:a}, ${2:b})$0' } } } })
  T.eq(ghost.shown_text(buf), 'f(a, b)')
  T.eq(ghost.snippet_text('a\\$b ${1|x,y|} $3'), 'a$b x ')
end)

T.test('completion responses (the fallback) replace the word before the cursor', function()
  local buf = setup_buffer({ 'x = fo' }, 0, 6)
  local ok = ghost.on_response(buf, { row = 0, col = 6, encoding = 'utf-16', method = 'textDocument/completion' },
    nil, { isIncomplete = false, items = { { label = 'foobar', insertText = 'foobar()' } } })
  T.ok(ok)
  T.eq(ghost.shown_text(buf), 'obar()')
  T.ok(ghost.accept(buf))
  T.eq(vim.api.nvim_get_current_line(), 'x = foobar()')
end)

T.test('UTF-16 positions are converted to byte columns', function()
  T.eq(ghost.byte_col('é = 1', 1, 'utf-16'), 2)
  T.eq(ghost.byte_col('😀x', 2, 'utf-16'), 4)
  T.eq(ghost.byte_col('abc', 2, 'utf-8'), 2)
  T.eq(ghost.byte_col('abc', 10, 'utf-16'), 3)
  local buf = setup_buffer({ 'é = fo' }, 0, 7)
  inline(buf, 0, 7, { items = { {
    insertText = 'foo',
    range = { start = { line = 0, character = 4 }, ['end'] = { line = 0, character = 6 } },
  } } })
  T.eq(ghost.shown_text(buf), 'o')
end)

T.test('keymaps are buffer-local insert mappings', function()
  local slm = require('slm_lsp')
  slm.setup({ cmd = { 'true' }, inline = { mode = 'virtual_text' } })
  local buf = T.buffer({ 'x' })
  slm.attach({ id = 555 }, buf)
  local maps = {}
  for _, m in ipairs(vim.api.nvim_buf_get_keymap(buf, 'i')) do
    maps[m.lhs] = m.desc
  end
  T.eq(maps['<Tab>'], 'slm-lsp: accept')
  T.eq(maps['<M-]>'], 'slm-lsp: next')
  T.eq(maps['<C-]>'], 'slm-lsp: dismiss')
  T.ok(ghost.buffers[buf], 'the renderer is attached')
end)

T.test('<Tab> accepts when a suggestion is shown and inserts a tab otherwise', function()
  local slm = require('slm_lsp')
  local buf = T.buffer({ 'x = ' })
  slm.attach({ id = 556 }, buf)
  vim.api.nvim_win_set_cursor(0, { 1, 4 })
  T.feed('A', 30)
  inline(buf, 0, 4, { items = { { insertText = 'value' } } })
  T.eq(ghost.shown_text(buf), 'value')
  T.feed('<Tab>', 50)
  T.eq(vim.api.nvim_get_current_line(), 'x = value')
  T.feed('<Tab><Esc>', 50)
  T.eq(vim.api.nvim_get_current_line(), 'x = value\t')
end)

T.run()

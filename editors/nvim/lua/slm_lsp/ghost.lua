--- Inline suggestions drawn as virtual text (extmarks), for Neovim 0.10/0.11 (which have no
--- `vim.lsp.inline_completion`) or when `inline.mode = 'virtual_text'`.
---
--- Asks the server with `textDocument/inlineCompletion` when it advertises
--- `inlineCompletionProvider`, else with `textDocument/completion`, and shows the first
--- item after the cursor: the first line inline, the others as virtual lines below.

local M = {}

local api = vim.api

M.ns = api.nvim_create_namespace('slm_lsp.ghost')

--- LSP InlineCompletionTriggerKind.
M.INVOKED = 1
M.AUTOMATIC = 2

---@class slm_lsp.ghost.Item
---@field text string Text that replaces `range` (or is inserted at the request position).
---@field range? {start_row: integer, start_col: integer, end_row: integer, end_col: integer} 0-based, byte columns
---@field command? table LSP command to run after accepting.

---@class slm_lsp.ghost.Suggestion
---@field row integer 0-based row of the request
---@field col integer 0-based byte column of the request
---@field items slm_lsp.ghost.Item[]
---@field index integer

---@class slm_lsp.ghost.Buffer
---@field client_id integer
---@field auto boolean
---@field debounce_ms integer
---@field hl_group string
---@field augroup integer
---@field timer? uv.uv_timer_t
---@field request_id? integer
---@field seq integer
---@field suggestion? slm_lsp.ghost.Suggestion

---@type table<integer, slm_lsp.ghost.Buffer>
M.buffers = {}

---@param bufnr integer
---@return integer?
local function win_of(bufnr)
  if api.nvim_win_get_buf(0) == bufnr then
    return api.nvim_get_current_win()
  end
  local win = vim.fn.bufwinid(bufnr)
  return win ~= -1 and win or nil
end

---@param bufnr integer
---@return integer?, integer? 0-based row, byte column
local function cursor(bufnr)
  local win = win_of(bufnr)
  if not win then
    return nil, nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

---@param bufnr integer
---@param row integer
---@return string
local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- Byte column of an LSP character offset on a line.
---@param line string
---@param character integer
---@param encoding string 'utf-8' | 'utf-16' | 'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' or character <= 0 then
    return math.min(character, #line)
  end
  local ok, col
  if vim.fn.has('nvim-0.11') == 1 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  return ok and col or #line
end

--- Removes snippet syntax: `${1:name}` -> `name`, `$1` / `${0}` -> ``, `\$` -> `$`.
---@param text string
---@return string
function M.snippet_text(text)
  local out = text
  for _ = 1, 10 do
    local replaced
    out, replaced = out:gsub('%${%d+:([^{}]*)}', '%1')
    if replaced == 0 then
      break
    end
  end
  out = out:gsub('%${%d+|([^,|}]*)[^}]*|}', '%1'):gsub('%${%d+}', ''):gsub('%$%d+', '')
  return (out:gsub('\\([%$}\\])', '%1'))
end

---@param bufnr integer
---@param range table LSP range
---@param encoding string
local function to_range(bufnr, range, encoding)
  local s, e = range.start, range['end']
  return {
    start_row = s.line,
    start_col = M.byte_col(line_at(bufnr, s.line), s.character, encoding),
    end_row = e.line,
    end_col = M.byte_col(line_at(bufnr, e.line), e.character, encoding),
  }
end

--- Turns an `InlineCompletionList`/`InlineCompletionItem[]` or a `CompletionList`/
--- `CompletionItem[]` into suggestion items.
---@param bufnr integer
---@param result any
---@param encoding string
---@param method string the request method the result answers
---@param row integer request row (0-based)
---@param col integer request byte column
---@return slm_lsp.ghost.Item[]
function M.items_from_result(bufnr, result, encoding, method, row, col)
  local items = {}
  if type(result) ~= 'table' then
    return items
  end
  local list = result.items or result
  for _, raw in ipairs(list) do
    local text, range
    if method == 'textDocument/inlineCompletion' then
      local insert = raw.insertText
      if type(insert) == 'table' then
        text = insert.kind == 'snippet' and M.snippet_text(insert.value or '') or insert.value
      else
        text = insert
      end
      range = raw.range and to_range(bufnr, raw.range, encoding)
    else
      local edit = raw.textEdit
      text = (edit and edit.newText) or raw.insertText or raw.label
      if raw.insertTextFormat == 2 and text then
        text = M.snippet_text(text)
      end
      local lsp_range = edit and (edit.range or edit.insert)
      if lsp_range then
        range = to_range(bufnr, lsp_range, encoding)
      else
        -- No edit: the item replaces the keyword before the cursor.
        local before = line_at(bufnr, row):sub(1, col)
        local start = vim.fn.match(before, [[\k*$]])
        range = { start_row = row, start_col = start, end_row = row, end_col = col }
      end
    end
    if type(text) == 'string' and text ~= '' then
      items[#items + 1] = { text = text, range = range, command = raw.command }
    end
  end
  return items
end

--- What is left to show of an item at the cursor: nil when it no longer fits what is typed.
---@param bufnr integer
---@param suggestion slm_lsp.ghost.Suggestion
---@param item slm_lsp.ghost.Item
---@param row integer
---@param col integer
---@return string?
local function remaining(bufnr, suggestion, item, row, col)
  local start_row = item.range and item.range.start_row or suggestion.row
  local start_col = item.range and item.range.start_col or suggestion.col
  if start_row ~= row or start_col > col then
    return nil
  end
  local typed = line_at(bufnr, row):sub(start_col + 1, col)
  if item.text:sub(1, #typed) ~= typed then
    return nil
  end
  local rest = item.text:sub(#typed + 1)
  return rest ~= '' and rest or nil
end

--- Draws the current suggestion at the cursor. Returns false (and draws nothing) when there is
--- no suggestion or it no longer matches the text.
---@param bufnr integer
---@param hint? boolean show "(i/n)" after the text
---@return boolean
function M.render(bufnr, hint)
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local state = M.buffers[bufnr]
  local suggestion = state and state.suggestion
  local item = suggestion and suggestion.items[suggestion.index]
  local row, col = cursor(bufnr)
  if not (item and row) then
    return false
  end
  ---@cast suggestion slm_lsp.ghost.Suggestion
  local rest = remaining(bufnr, suggestion, item, row, col)
  if not rest then
    return false
  end
  local hl = state.hl_group
  local lines = vim.split(rest, '\n', { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], hl } }
  end
  local virt_text = { { lines[1], hl } }
  if hint and #suggestion.items > 1 then
    local more = { (' (%d/%d)'):format(suggestion.index, #suggestion.items), 'SlmGhostTextHint' }
    if #virt_lines > 0 then
      table.insert(virt_lines[#virt_lines], more)
    else
      table.insert(virt_text, more)
    end
  end
  local mark = { virt_text_pos = 'inline', hl_mode = 'combine', right_gravity = false }
  if lines[1] ~= '' or #virt_lines == 0 then
    mark.virt_text = virt_text
  end
  if #virt_lines > 0 then
    mark.virt_lines = virt_lines
  end
  api.nvim_buf_set_extmark(bufnr, M.ns, row, col, mark)
  return true
end

--- The text currently drawn (first line and virtual lines joined with newlines), or nil.
---@param bufnr integer
---@return string?
function M.shown_text(bufnr)
  local marks = api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local details = marks[1][4]
  local parts = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    if chunk[2] ~= 'SlmGhostTextHint' then
      parts[#parts + 1] = chunk[1]
    end
  end
  local text = table.concat(parts)
  for _, vline in ipairs(details.virt_lines or {}) do
    local line = {}
    for _, chunk in ipairs(vline) do
      if chunk[2] ~= 'SlmGhostTextHint' then
        line[#line + 1] = chunk[1]
      end
    end
    text = text .. '\n' .. table.concat(line)
  end
  return text
end

--- Handles a response (also usable directly with a canned result in tests).
---@param bufnr integer
---@param ctx {seq?: integer, row: integer, col: integer, encoding: string, method: string}
---@param err? table
---@param result any
---@return boolean drawn
function M.on_response(bufnr, ctx, err, result)
  local state = M.buffers[bufnr]
  if not state or not api.nvim_buf_is_valid(bufnr) then
    return false
  end
  if ctx.seq and ctx.seq ~= state.seq then
    return false -- a newer request is under way
  end
  state.request_id = nil
  if err then
    return false
  end
  local items = M.items_from_result(bufnr, result, ctx.encoding, ctx.method, ctx.row, ctx.col)
  if #items == 0 then
    state.suggestion = nil
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
    return false
  end
  state.suggestion = { row = ctx.row, col = ctx.col, items = items, index = 1 }
  return M.render(bufnr)
end

---@param client vim.lsp.Client
---@return boolean
local function has_inline_provider(client)
  return (client.server_capabilities or {}).inlineCompletionProvider ~= nil
    and client.server_capabilities.inlineCompletionProvider ~= false
end

---@param bufnr integer
local function cancel_pending(bufnr)
  local state = M.buffers[bufnr]
  if state and state.request_id then
    local client = vim.lsp.get_client_by_id(state.client_id)
    if client then
      require('slm_lsp').cancel(client, state.request_id)
    end
    state.request_id = nil
  end
end

--- Requests a suggestion at the cursor.
---@param bufnr integer
---@param trigger_kind? integer M.INVOKED or M.AUTOMATIC (default INVOKED)
---@param on_done? fun(drawn: boolean)
---@return boolean sent
function M.request(bufnr, trigger_kind, on_done)
  local state = M.buffers[bufnr]
  local client = state and vim.lsp.get_client_by_id(state.client_id)
  local row, col = cursor(bufnr)
  if not (state and client and row) then
    return false
  end
  ---@cast row integer
  ---@cast col integer
  cancel_pending(bufnr)
  state.seq = state.seq + 1
  local encoding = client.offset_encoding or 'utf-16'
  local line = line_at(bufnr, row)
  local character = vim.fn.has('nvim-0.11') == 1 and vim.str_utfindex(line, encoding, col, false)
    or select(encoding == 'utf-16' and 2 or 1, vim.str_utfindex(line, col))
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = row, character = encoding == 'utf-8' and col or character },
  }
  local method
  if has_inline_provider(client) then
    method = 'textDocument/inlineCompletion'
    params.context = { triggerKind = trigger_kind or M.INVOKED }
  else
    method = 'textDocument/completion'
    params.context = { triggerKind = 1 }
  end
  local ctx = { seq = state.seq, row = row, col = col, encoding = encoding, method = method }
  local ok, id = require('slm_lsp').request(client, method, params, function(err, result)
    local drawn = M.on_response(bufnr, ctx, err, result)
    if on_done then
      on_done(drawn)
    end
  end, bufnr)
  state.request_id = ok and id or nil
  return ok and true or false
end

--- Clears the suggestion and cancels a pending request.
---@param bufnr integer
---@return boolean whether a suggestion was shown
function M.dismiss(bufnr)
  local state = M.buffers[bufnr]
  if not state then
    return false
  end
  local shown = #api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, { limit = 1 }) > 0
  cancel_pending(bufnr)
  if state.timer then
    state.timer:stop()
  end
  state.suggestion = nil
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  return shown
end

---@param bufnr integer
---@param whole boolean
---@return boolean
local function do_accept(bufnr, whole)
  local state = M.buffers[bufnr]
  local suggestion = state and state.suggestion
  local item = suggestion and suggestion.items[suggestion.index]
  local row, col = cursor(bufnr)
  if not (item and row) then
    return false
  end
  ---@cast suggestion slm_lsp.ghost.Suggestion
  ---@cast row integer
  ---@cast col integer
  local rest = remaining(bufnr, suggestion, item, row, col)
  if not rest then
    return false
  end
  local insert = rest
  local end_row, end_col = row, col
  if whole then
    -- Replace what the item's range covers after the cursor (e.g. an auto-inserted `)`).
    if item.range and item.range.end_row == row and item.range.end_col > col then
      end_col = math.min(item.range.end_col, #line_at(bufnr, row))
    end
  else
    insert = rest:match('^(\n?[^\n]*)') or rest
  end
  local lines = vim.split(insert, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, end_row, end_col, lines)
  local win = win_of(bufnr)
  if win then
    api.nvim_win_set_cursor(win, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
  end
  if whole or insert == rest then
    state.suggestion = nil
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
    if item.command then
      local client = vim.lsp.get_client_by_id(state.client_id)
      if client then
        require('slm_lsp').request(client, 'workspace/executeCommand', {
          command = item.command.command,
          arguments = item.command.arguments,
        }, function() end, bufnr)
      end
    end
  else
    M.render(bufnr)
  end
  return true
end

--- Accepts the whole suggestion.
---@param bufnr integer
---@return boolean
function M.accept(bufnr)
  return do_accept(bufnr, true)
end

--- Accepts the suggestion up to the end of its next line.
---@param bufnr integer
---@return boolean
function M.accept_line(bufnr)
  return do_accept(bufnr, false)
end

--- Shows the next (count > 0) or previous (count < 0) item.
---@param bufnr integer
---@param count integer
---@return boolean
function M.cycle(bufnr, count)
  local state = M.buffers[bufnr]
  local suggestion = state and state.suggestion
  if not suggestion then
    return false
  end
  local n = #suggestion.items
  suggestion.index = (suggestion.index - 1 + count) % n + 1
  return M.render(bufnr, true)
end

--- Requests a suggestion now (an explicit trigger).
---@param bufnr integer
---@return boolean
function M.trigger(bufnr)
  return M.request(bufnr, M.INVOKED)
end

---@param bufnr integer
local function schedule_request(bufnr)
  local state = M.buffers[bufnr]
  if not state or not state.auto then
    return
  end
  state.timer = state.timer or (vim.uv or vim.loop).new_timer()
  state.timer:stop()
  state.timer:start(state.debounce_ms, 0, vim.schedule_wrap(function()
    if M.buffers[bufnr] == state and api.nvim_get_current_buf() == bufnr and vim.fn.mode():match('^i') then
      M.request(bufnr, M.AUTOMATIC)
    end
  end))
end

---@param bufnr integer
---@param client vim.lsp.Client
---@param opts slm_lsp.InlineOptions
function M.attach(bufnr, client, opts)
  M.detach(bufnr)
  local group = api.nvim_create_augroup('slm_lsp.ghost.' .. bufnr, { clear = true })
  M.buffers[bufnr] = {
    client_id = client.id,
    auto = opts.auto_trigger ~= false,
    debounce_ms = opts.debounce_ms or 150,
    hl_group = opts.hl_group or 'SlmGhostText',
    augroup = group,
    seq = 0,
  }
  api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      -- Keep a suggestion that still fits what was typed; otherwise ask again.
      if not M.render(bufnr) then
        schedule_request(bufnr)
      end
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.dismiss(bufnr)
    end,
  })
end

---@param bufnr integer
function M.detach(bufnr)
  local state = M.buffers[bufnr]
  if not state then
    return
  end
  if api.nvim_buf_is_valid(bufnr) then
    M.dismiss(bufnr)
  end
  if state.timer then
    state.timer:stop()
    state.timer:close()
  end
  pcall(api.nvim_del_augroup_by_id, state.augroup)
  M.buffers[bufnr] = nil
end

---@param enable boolean
function M.set_auto(enable)
  for bufnr, state in pairs(M.buffers) do
    state.auto = enable
    if not enable then
      M.dismiss(bufnr)
    end
  end
end

return M

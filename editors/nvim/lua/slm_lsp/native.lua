--- Inline completion through Neovim's own `vim.lsp.inline_completion` (0.12+).

local M = {}

local buffers = {} ---@type table<integer, {client_id: integer}>

--- True when this Neovim has `vim.lsp.inline_completion` with the API used here.
---@return boolean
function M.available()
  if vim.fn.has('nvim-0.12') ~= 1 then
    return false
  end
  local ok, ic = pcall(require, 'vim.lsp.inline_completion')
  return ok and type(ic) == 'table' and type(ic.enable) == 'function' and type(ic.get) == 'function'
end

local function ic()
  return require('vim.lsp.inline_completion')
end

---@param bufnr integer
---@param client vim.lsp.Client
---@param opts slm_lsp.InlineOptions
function M.attach(bufnr, client, opts)
  buffers[bufnr] = { client_id = client.id }
  if opts.auto_trigger ~= false then
    ic().enable(true, { bufnr = bufnr })
  end
end

---@param bufnr integer
function M.detach(bufnr)
  if buffers[bufnr] and vim.api.nvim_buf_is_valid(bufnr) then
    ic().enable(false, { bufnr = bufnr })
  end
  buffers[bufnr] = nil
end

---@param bufnr integer
---@return boolean
function M.is_enabled(bufnr)
  return ic().is_enabled({ bufnr = bufnr })
end

---@param bufnr integer
---@return boolean
function M.accept(bufnr)
  return ic().get({ bufnr = bufnr })
end

--- Accepts up to the end of the first line of the suggestion (the rest is dropped; the next
--- suggestion is requested as you type).
---@param bufnr integer
---@return boolean
function M.accept_line(bufnr)
  return ic().get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = type(item.insert_text) == 'string' and item.insert_text or item.insert_text.value
      local range = item.range
      local cursor = vim.api.nvim_win_get_cursor(0)
      local row, col = cursor[1] - 1, cursor[2]
      local start_row, start_col = row, col
      if range then
        start_row, start_col = range.start.row, range.start.col
      end
      -- The part of the text up to the cursor is already typed.
      local typed = ''
      if start_row == row and start_col <= col then
        typed = vim.api.nvim_buf_get_text(bufnr, row, start_col, row, col, {})[1] or ''
      end
      local rest = text:sub(1, #typed) == typed and text:sub(#typed + 1) or text
      local first = rest:match('^(\n?[^\n]*)') or rest
      local lines = vim.split(first, '\n', { plain = true })
      vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
      vim.api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
    end,
  })
end

---@param bufnr integer
---@param count integer
---@return boolean
function M.cycle(bufnr, count)
  ic().select({ bufnr = bufnr, count = count })
  return true
end

--- Hides the suggestion: re-creating the buffer's completor drops the shown item.
---@param bufnr integer
---@return boolean
function M.dismiss(bufnr)
  if not (buffers[bufnr] and M.is_enabled(bufnr)) then
    return false
  end
  local shown = #vim.api.nvim_buf_get_extmarks(
    bufnr, vim.api.nvim_create_namespace('nvim.lsp.inline_completion'), 0, -1, { limit = 1 }) > 0
  ic().enable(false, { bufnr = bufnr })
  ic().enable(true, { bufnr = bufnr })
  return shown
end

--- Requests a suggestion now by running the completor's own cursor-moved handler.
---@param bufnr integer
---@return boolean
function M.trigger(bufnr)
  if not buffers[bufnr] then
    return false
  end
  if not M.is_enabled(bufnr) then
    -- Automatic suggestions are off: turn the completor on for this one suggestion, and off
    -- again as soon as the text changes or Insert mode ends.
    ic().enable(true, { bufnr = bufnr })
    vim.api.nvim_create_autocmd({ 'TextChangedI', 'InsertLeave' }, {
      buffer = bufnr,
      once = true,
      callback = function()
        vim.schedule(function()
          local inline = require('slm_lsp').options.inline or {}
          if buffers[bufnr] and inline.auto_trigger == false and vim.api.nvim_buf_is_valid(bufnr) then
            ic().enable(false, { bufnr = bufnr })
          end
        end)
      end,
    })
  end
  local group = ('nvim.lsp.inline_completion:%d'):format(bufnr)
  local ok = pcall(vim.api.nvim_exec_autocmds, 'CursorMovedI', { group = group, modeline = false })
  return ok
end

---@param enable boolean
function M.set_auto(enable)
  for bufnr in pairs(buffers) do
    if vim.api.nvim_buf_is_valid(bufnr) then
      ic().enable(enable, { bufnr = bufnr })
    end
  end
end

return M

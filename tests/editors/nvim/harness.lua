-- A minimal async test harness for headless Neovim, run as `nvim --clean --headless -S spec.lua`.
-- Tests run one by one in a coroutine, so a test can wait (T.wait / T.sleep) while Neovim's
-- main loop keeps running (typed keys, timers, LSP messages). Results go to stdout, ending
-- with "N passed, N failed"; Neovim exits 0 when all passed, 1 otherwise.

local T = { cases = {} }

local plugin = assert(vim.env.SLM_PLUGIN_DIR, 'SLM_PLUGIN_DIR is not set')
vim.opt.runtimepath:prepend(plugin)
vim.opt.swapfile = false
vim.opt.shortmess:append('I')

local function out(text)
  io.stdout:write(text .. '\n')
end

function T.test(name, fn)
  T.cases[#T.cases + 1] = { name = name, fn = fn }
end

function T.eq(got, want, what)
  if not vim.deep_equal(got, want) then
    error(('%sexpected %s, got %s'):format(what and (what .. ': ') or '', vim.inspect(want), vim.inspect(got)), 2)
  end
end

function T.ok(value, what)
  if not value then
    error('expected a true value' .. (what and (': ' .. what) or ''), 2)
  end
  return value
end

function T.match(text, pattern, what)
  if type(text) ~= 'string' or not text:find(pattern) then
    error(('%s%s does not match %q'):format(what and (what .. ': ') or '', vim.inspect(text), pattern), 2)
  end
end

--- Yields to the main loop for `ms` milliseconds.
function T.sleep(ms)
  local co = coroutine.running()
  vim.defer_fn(function()
    coroutine.resume(co)
  end, ms)
  coroutine.yield()
end

--- Waits (yielding to the main loop) until `cond()` is truthy; errors after `timeout_ms`.
function T.wait(cond, timeout_ms, what)
  local deadline = vim.uv.now() + (timeout_ms or 5000)
  while true do
    local value = cond()
    if value then
      return value
    end
    if vim.uv.now() > deadline then
      error('timed out waiting for ' .. (what or 'a condition'), 2)
    end
    T.sleep(20)
  end
end

--- Types keys as if from the keyboard (processed by the main loop), then waits a little.
function T.feed(keys, wait_ms)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
  T.sleep(wait_ms or 50)
end

--- A fresh scratch file buffer with the given lines, in the current window.
function T.buffer(lines, name, filetype)
  vim.cmd('enew!')
  local buf = vim.api.nvim_get_current_buf()
  if name then
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  -- Let the cursor sit after the last character in Normal mode, as it does in Insert mode.
  vim.wo.virtualedit = 'onemore'
  if filetype then
    vim.bo[buf].filetype = filetype
  end
  return buf
end

function T.run()
  local co = coroutine.create(function()
    local passed, failed = 0, 0
    for _, case in ipairs(T.cases) do
      if vim.env.SLM_TEST_TRACE then
        out('# start ' .. case.name)
      end
      local ok, err = xpcall(case.fn, debug.traceback)
      if ok then
        passed = passed + 1
        out('ok - ' .. case.name)
      else
        failed = failed + 1
        out('not ok - ' .. case.name .. '\n' .. tostring(err))
      end
    end
    out(('%d passed, %d failed'):format(passed, failed))
    vim.schedule(function()
      for _, client in ipairs(vim.lsp.get_clients()) do
        pcall(function()
          client:stop(true)
        end)
      end
      vim.cmd(failed == 0 and 'qall!' or 'cquit! 1')
    end)
  end)
  -- Start after startup has finished (VimEnter), so typed keys are processed normally.
  vim.schedule(function()
    local ok, err = coroutine.resume(co)
    if not ok then
      out('harness error: ' .. tostring(err))
      vim.cmd('cquit! 2')
    end
  end)
end

return T

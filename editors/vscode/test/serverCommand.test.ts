import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ResolveInput, expandVariables, isResolveError, resolveServerCommand, venvExecutable } from '../src/serverCommand';

function input(overrides: Partial<ResolveInput>, files: string[] = []): ResolveInput {
  return {
    serverPath: '',
    venv: '',
    workspaceFolder: '/work/proj',
    home: '/home/ada',
    platform: 'linux',
    env: { PATH: '/usr/local/bin:/usr/bin' },
    isExecutable: (file) => files.includes(file),
    ...overrides,
  };
}

test('serverPath wins over venv and PATH', () => {
  const files = ['/opt/slm/bin/slm-lsp', '/venv/bin/slm-lsp', '/usr/bin/slm-lsp'];
  const got = resolveServerCommand(input({ serverPath: '/opt/slm/bin/slm-lsp', venv: '/venv' }, files));
  assert.deepEqual(got, { command: '/opt/slm/bin/slm-lsp', args: ['serve'], source: 'serverPath' });
});

test('serverPath expands ~ and ${workspaceFolder} and resolves relative paths', () => {
  assert.deepEqual(
    resolveServerCommand(input({ serverPath: '~/bin/slm-lsp' }, ['/home/ada/bin/slm-lsp'])),
    { command: '/home/ada/bin/slm-lsp', args: ['serve'], source: 'serverPath' },
  );
  assert.deepEqual(
    resolveServerCommand(input({ serverPath: '${workspaceFolder}/tools/slm-lsp' }, ['/work/proj/tools/slm-lsp'])),
    { command: '/work/proj/tools/slm-lsp', args: ['serve'], source: 'serverPath' },
  );
  assert.deepEqual(
    resolveServerCommand(input({ serverPath: 'tools/slm-lsp' }, ['/work/proj/tools/slm-lsp'])),
    { command: '/work/proj/tools/slm-lsp', args: ['serve'], source: 'serverPath' },
  );
});

test('a serverPath that does not exist is an error, not a silent fallback', () => {
  const got = resolveServerCommand(input({ serverPath: '/nope/slm-lsp' }, ['/usr/bin/slm-lsp']));
  assert.ok(isResolveError(got));
  assert.match(got.error, /slm\.serverPath.*\/nope\/slm-lsp/);
});

test('venv gives <venv>/bin/slm-lsp', () => {
  const got = resolveServerCommand(input({ venv: '~/.venvs/slm' }, ['/home/ada/.venvs/slm/bin/slm-lsp', '/usr/bin/slm-lsp']));
  assert.deepEqual(got, { command: '/home/ada/.venvs/slm/bin/slm-lsp', args: ['serve'], source: 'venv' });
});

test('a venv without slm-lsp is an error', () => {
  const got = resolveServerCommand(input({ venv: '/venv' }, []));
  assert.ok(isResolveError(got));
  assert.match(got.error, /\/venv\/bin\/slm-lsp/);
});

test('PATH is searched in order', () => {
  const got = resolveServerCommand(input({}, ['/usr/bin/slm-lsp', '/usr/local/bin/slm-lsp']));
  assert.deepEqual(got, { command: '/usr/local/bin/slm-lsp', args: ['serve'], source: 'PATH' });
});

test('the workspace .venv is the last resort', () => {
  const got = resolveServerCommand(input({}, ['/work/proj/.venv/bin/slm-lsp']));
  assert.deepEqual(got, { command: '/work/proj/.venv/bin/slm-lsp', args: ['serve'], source: 'workspace venv' });
});

test('nothing found gives an actionable error', () => {
  const got = resolveServerCommand(input({}, []));
  assert.ok(isResolveError(got));
  assert.match(got.error, /slm\.serverPath or slm\.venv/);
});

test('Windows: Scripts\\slm-lsp.exe and PATHEXT', () => {
  assert.equal(venvExecutable('C:\\venv', 'win32'), 'C:\\venv\\Scripts\\slm-lsp.exe');
  const got = resolveServerCommand(input({
    platform: 'win32',
    workspaceFolder: 'C:\\proj',
    env: { Path: 'C:\\Python\\Scripts;C:\\Windows', PATHEXT: '.COM;.EXE' },
  }, ['C:\\Python\\Scripts\\slm-lsp.exe']));
  assert.deepEqual(got, { command: 'C:\\Python\\Scripts\\slm-lsp.exe', args: ['serve'], source: 'PATH' });
});

test('expandVariables handles ${env:NAME} and ${userHome}', () => {
  const i = input({ env: { SLM_HOME: '/srv/slm' } });
  assert.equal(expandVariables('${env:SLM_HOME}/bin/slm-lsp', i), '/srv/slm/bin/slm-lsp');
  assert.equal(expandVariables('${userHome}/x', i), '/home/ada/x');
  assert.equal(expandVariables('${env:MISSING}x', i), 'x');
});

import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  IgnoreMatcher,
  cacheKey,
  copyInto,
  digestSources,
  expandWord,
  expandWords,
  jsonForm,
  parseDockerfile,
  parseFlags,
  parseGoDuration,
  parseNameValues,
  pruneContext,
  resolveChown,
  resolveInScope,
} from '../src/index.js';

const env = (vars: Record<string, string>) => (name: string) => vars[name];

describe('Dockerfile parser', () => {
  it('joins continuation lines, skips comments and blank lines inside them, keeps flags apart', () => {
    const file = parseDockerfile('# a comment\nFROM busybox AS Base\n\nRUN echo a \\\n  # inner comment\n\n  && echo b\ncopy --from=base --chown=1:2 /a /b\n');
    assert.deepEqual(
      file.instructions.map((i) => [i.keyword, i.rest, i.flags, i.line]),
      [
        ['from', 'busybox AS Base', [], 2],
        ['run', 'echo a   && echo b', [], 4],
        ['copy', '/a /b', ['--from=base', '--chown=1:2'], 8],
      ],
    );
    assert.equal(file.instructions[1]!.original, 'RUN echo a   && echo b');
  });

  it('honours the escape directive only at the top', () => {
    const file = parseDockerfile('# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n');
    assert.equal(file.escape, '`');
    assert.equal(file.instructions[1]!.rest, 'dir c:\\   /w');
    const late = parseDockerfile('FROM x\n# escape=`\nRUN a `\n');
    assert.equal(late.escape, '\\');
    assert.equal(late.instructions[1]!.rest, 'a `');
  });

  it('refuses unknown instructions with docker\'s message', () => {
    assert.throws(() => parseDockerfile('FROM x\nFOO bar\n'), /dockerfile parse error on line 2: unknown instruction: FOO/);
  });

  it('parses known flags and names BuildKit for flags only BuildKit has', () => {
    const [copy] = parseDockerfile('COPY --from=build --chown=app /a /b\n').instructions;
    assert.deepEqual([...parseFlags(copy!, ['from', 'chown'])], [['from', 'build'], ['chown', 'app']]);
    const [chmod] = parseDockerfile('COPY --chmod=755 a b\n').instructions;
    assert.throws(() => parseFlags(chmod!, ['from', 'chown']), /the --chmod option requires BuildKit/);
    const [odd] = parseDockerfile('RUN --bogus x\n').instructions;
    assert.throws(() => parseFlags(odd!, []), /Unknown flag: bogus/);
  });

  it('tells the JSON form from the shell form', () => {
    assert.deepEqual(jsonForm('["sh", "-c", "echo"]'), ['sh', '-c', 'echo']);
    assert.equal(jsonForm('[not json'), undefined);
    assert.equal(jsonForm('echo hi'), undefined);
    assert.equal(jsonForm('[1, 2]'), undefined);
  });
});

describe('variable expansion', () => {
  const lookup = env({ A: 'alpha', EMPTY: '' });

  it('expands $VAR, ${VAR} and the :- - :+ + modifiers', () => {
    assert.equal(expandWord('$A-${A}', lookup), 'alpha-alpha');
    assert.equal(expandWord('${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-d}', lookup), 'd  d d');
    assert.equal(expandWord('[${A:+x}] [${EMPTY:+x}] [${EMPTY+x}] [${UNSET+x}]', lookup), '[x] [] [x] []');
    assert.equal(expandWord('${UNSET:-${A}}', lookup), 'alpha');
    assert.throws(() => expandWord('${UNSET:?must be set}', lookup), /UNSET: must be set/);
  });

  it('removes quotes, keeps single-quoted text literal and honours the escape character', () => {
    assert.equal(expandWord(`'$A' "$A" \\$A "a\\"b"`, lookup), '$A alpha $A a"b');
    assert.equal(expandWord('`$A', lookup, '`'), '$A');
    assert.equal(expandWord('$ a$', lookup), '$ a$');
  });

  it('splits words on unquoted whitespace', () => {
    assert.deepEqual(expandWords('80 "443/tcp"  $A', lookup), ['80', '443/tcp', 'alpha']);
  });

  it('parses ENV/LABEL pairs and the legacy one-pair form', () => {
    const [ins] = parseDockerfile('ENV X="a b" Y=$A Z=\n').instructions;
    assert.deepEqual(parseNameValues(ins!, lookup, '\\'), [['X', 'a b'], ['Y', 'alpha'], ['Z', '']]);
    const [legacy] = parseDockerfile('ENV X hello $A world\n').instructions;
    assert.deepEqual(parseNameValues(legacy!, lookup, '\\'), [['X', 'hello alpha world']]);
    const [arg] = parseDockerfile('ARG NAME OTHER=1\n').instructions;
    assert.deepEqual(parseNameValues(arg!, lookup, '\\', true), [['NAME', undefined], ['OTHER', '1']]);
  });

  it('parses Go durations for HEALTHCHECK', () => {
    assert.equal(parseGoDuration('1m30s', 'interval'), 90e9);
    assert.equal(parseGoDuration('500ms', 'timeout'), 5e8);
    assert.throws(() => parseGoDuration('5 s', 'timeout'), /invalid duration/);
  });
});

describe('.dockerignore', () => {
  it('matches patterns, parents, ** and exceptions (last match wins)', () => {
    const m = new IgnoreMatcher('# c\n*.log\n/build/\n**/node_modules\n!keep.log\ndocs/*.md\n');
    assert.equal(m.ignores('a.log'), true);
    assert.equal(m.ignores('keep.log'), false);
    assert.equal(m.ignores('sub/a.log'), false);
    assert.equal(m.ignores('build/x/y'), true);
    assert.equal(m.ignores('a/b/node_modules/c'), true);
    assert.equal(m.ignores('node_modules'), true);
    assert.equal(m.ignores('docs/a.md'), true);
    assert.equal(m.ignores('docs/sub/a.md'), false);
    assert.equal(m.ignores('src/main.ts'), false);
  });

  it('prunes an extracted context, descending into excluded folders only for exceptions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'builder-ignore-'));
    try {
      for (const f of ['a/keep.txt', 'a/drop.txt', 'b/x', 'top.txt']) {
        await mkdir(join(dir, f, '..'), { recursive: true });
        await writeFile(join(dir, f), f);
      }
      await pruneContext(dir, new IgnoreMatcher('a\n!a/keep.txt\nb\n'));
      assert.equal(await readFile(join(dir, 'a/keep.txt'), 'utf8'), 'a/keep.txt');
      await assert.rejects(lstat(join(dir, 'a/drop.txt')));
      await assert.rejects(lstat(join(dir, 'b')));
      assert.ok(await lstat(join(dir, 'top.txt')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('writing into a root filesystem', () => {
  let root = '';
  let outside = '';
  let source = '';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'builder-root-'));
    outside = await mkdtemp(join(tmpdir(), 'builder-outside-'));
    source = await mkdtemp(join(tmpdir(), 'builder-src-'));
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n');
    await writeFile(join(root, 'etc/group'), 'root:x:0:\nstaff:x:50:\n');
    // Links that would leave the root if followed on the host.
    await symlink(outside, join(root, 'abs'));
    await symlink('../../../../../..' + outside, join(root, 'climb'));
    await symlink('/etc', join(root, 'etclink'));
    await writeFile(join(source, 'file.txt'), 'content');
  });

  after(async () => {
    for (const d of [root, outside, source]) await rm(d, { recursive: true, force: true });
  });

  it('resolves symlinks inside the root, never outside it', async () => {
    assert.equal(await resolveInScope(root, '/abs/x'), join(root, outside, 'x'));
    assert.equal(await resolveInScope(root, 'climb/x'), join(root, outside, 'x'));
    assert.equal(await resolveInScope(root, '/etclink/passwd'), join(root, 'etc/passwd'));
    assert.equal(await resolveInScope(root, '/../../etc'), join(root, 'etc'));
    assert.equal(await resolveInScope(root, '/abs', false), join(root, 'abs'));
  });

  it('copies through hostile links into the root only', async () => {
    await copyInto(root, '/abs/', [{ host: join(source, 'file.txt'), name: 'file.txt' }], { owner: { uid: 0, gid: 0 }, extractArchives: false });
    await copyInto(root, '/climb/deeper/', [{ host: join(source, 'file.txt'), name: 'file.txt' }], { owner: { uid: 0, gid: 0 }, extractArchives: false });
    assert.equal(await readFile(join(root, outside, 'file.txt'), 'utf8'), 'content');
    assert.equal(await readFile(join(root, outside, 'deeper/file.txt'), 'utf8'), 'content');
    await assert.rejects(lstat(join(outside, 'file.txt')));
    await assert.rejects(lstat(join(outside, 'deeper')));
    // A file destination that is a symlink is replaced, not written through.
    await symlink(join(outside, 'target'), join(root, 'dest-link'));
    await copyInto(root, '/dest-link', [{ host: join(source, 'file.txt'), name: 'file.txt' }], { owner: { uid: 0, gid: 0 }, extractArchives: false });
    assert.ok((await lstat(join(root, 'dest-link'))).isFile());
    await assert.rejects(lstat(join(outside, 'target')));
  });

  it('copies directories by content with the requested owner and keeps symlinks as links', async () => {
    const dir = join(source, 'tree');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'sub/a'), 'a');
    await symlink('/etc/shadow', join(dir, 'link'));
    await copyInto(root, '/opt/tree', [{ host: dir, name: 'tree' }], { owner: { uid: 1234, gid: 50 }, extractArchives: false });
    const st = await lstat(join(root, 'opt/tree/sub/a'));
    assert.deepEqual([st.uid, st.gid], [1234, 50]);
    assert.equal(await readlink(join(root, 'opt/tree/link')), '/etc/shadow');
  });

  it('resolves --chown names against the root\'s passwd and group files', async () => {
    assert.deepEqual(await resolveChown(root, 'app'), { uid: 1234, gid: 4321 });
    assert.deepEqual(await resolveChown(root, 'app:staff'), { uid: 1234, gid: 50 });
    assert.deepEqual(await resolveChown(root, '7:8'), { uid: 7, gid: 8 });
    await assert.rejects(resolveChown(root, 'nobody'), /can't find uid for user nobody/);
  });
});

describe('cache keys', () => {
  it('depend on the parent, the instruction, the config and copied content', async () => {
    const base = { parent: 'sha256:' + 'a'.repeat(64), createdBy: 'RUN x', config: { Env: ['A=1'], Labels: { b: '1', a: '2' } } };
    assert.equal(cacheKey(base), cacheKey({ ...base, config: { Labels: { a: '2', b: '1' }, Env: ['A=1'] } }));
    assert.notEqual(cacheKey(base), cacheKey({ ...base, parent: 'sha256:' + 'b'.repeat(64) }));
    assert.notEqual(cacheKey(base), cacheKey({ ...base, createdBy: 'RUN y' }));
    assert.notEqual(cacheKey(base), cacheKey({ ...base, config: { Env: ['A=2'] } }));
    const dir = await mkdtemp(join(tmpdir(), 'builder-digest-'));
    try {
      await writeFile(join(dir, 'f'), 'one');
      const first = await digestSources([{ host: join(dir, 'f'), name: 'f' }], false);
      await writeFile(join(dir, 'f'), 'two');
      assert.notEqual(await digestSources([{ host: join(dir, 'f'), name: 'f' }], false), first);
      await writeFile(join(dir, 'f'), 'one');
      assert.equal(await digestSources([{ host: join(dir, 'f'), name: 'f' }], false), first);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar, makeImageArchive } from '../helpers/images.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';

// Small upload chunks, so that every push here goes up as several PATCH requests with Content-Range.
const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', { plugin: '@tsengine/registry-v2', options: { uploadChunkBytes: 256 * 1024 } }];
const MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Monolithic blob upload straight to the registry, the way another client would have pushed it. */
async function uploadBlob(registry: TestRegistry, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const start = await registry.request('POST', `/v2/${repo}/blobs/uploads/`);
  assert.equal(start.status, 202, start.body.toString());
  const target = new URL(String(start.headers.location), `http://${registry.host}`);
  target.searchParams.set('digest', digest);
  const put = await registry.request('PUT', target.pathname + target.search, { 'Content-Type': 'application/octet-stream' }, blob);
  assert.equal(put.status, 201, put.body.toString());
  return digest;
}

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

describe('registry-v2: docker push and pull against a local docker-registry', () => {
  let registry: TestRegistry;
  let daemon: Daemon;
  let image: string;
  let imageId: string;
  let pushedDigest: string;

  before(async () => {
    registry = await startRegistry();
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    imageId = (await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar())).trim();
    image = `${registry.host}/test/busybox`;
  });
  after(async () => {
    await daemon?.stop();
    await registry?.stop();
  });

  it('pushes a tagged image; the registry then serves its schema2 manifest', async () => {
    await ok(daemon, ['tag', 'busybox', `${image}:1`]);
    const out = await ok(daemon, ['push', `${image}:1`]);
    assert.match(out, new RegExp(`The push refers to repository \\[${image.replace(/\./g, '\\.')}\\]`));
    assert.match(out, /Pushed/);
    const line = /1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(out);
    assert.ok(line, `no digest line in: ${out}`);
    pushedDigest = line[1]!;

    const manifest = await registry.get('/v2/test/busybox/manifests/1', { Accept: MANIFEST_V2 });
    assert.equal(manifest.status, 200, manifest.body.toString());
    assert.equal(manifest.headers['docker-content-digest'], pushedDigest);
    assert.equal(manifest.body.length, Number(line[2]));
    const parsed = JSON.parse(manifest.body.toString()) as { mediaType: string; config: { digest: string }; layers: Array<{ mediaType: string; digest: string; size: number }> };
    assert.equal(parsed.mediaType, MANIFEST_V2);
    assert.equal(parsed.config.digest, imageId);
    assert.equal(parsed.layers.length, 1);
    assert.equal(parsed.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    const blob = await registry.get(`/v2/test/busybox/blobs/${parsed.layers[0]!.digest}`);
    assert.equal(sha256(blob.body), parsed.layers[0]!.digest);
    assert.equal(blob.body.length, parsed.layers[0]!.size);
    assert.equal(sha256(gunzipSync(blob.body)), (JSON.parse((await registry.get(`/v2/test/busybox/blobs/${imageId}`)).body.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids[0]);

    const again = await ok(daemon, ['push', `${image}:1`]);
    assert.match(again, /Layer already exists/);
    assert.match(again, new RegExp(`1: digest: ${pushedDigest}`));
  });

  it('pushes to another repository of the same registry with a cross-repository mount', async () => {
    await ok(daemon, ['tag', 'busybox', `${registry.host}/other/busybox:1`]);
    const out = await ok(daemon, ['push', `${registry.host}/other/busybox:1`]);
    assert.match(out, /Mounted from test\/busybox/);
    assert.match(out, new RegExp(`1: digest: ${pushedDigest}`));
    await ok(daemon, ['rmi', `${registry.host}/other/busybox:1`]);
  });

  it('pulls the pushed image back after rmi with the same ID and digest', async () => {
    await ok(daemon, ['rmi', `${image}:1`]);
    assert.notEqual((await docker(daemon, ['image', 'inspect', `${image}:1`])).status, 0);
    await ok(daemon, ['rmi', 'busybox:latest']);
    const out = await ok(daemon, ['pull', `${image}:1`]);
    assert.match(out, /1: Pulling from test\/busybox/);
    assert.match(out, /Pull complete/);
    assert.match(out, new RegExp(`Digest: ${pushedDigest}`));
    assert.match(out, new RegExp(`Status: Downloaded newer image for ${image.replace(/\./g, '\\.')}:1`));
    const inspect = JSON.parse(await ok(daemon, ['image', 'inspect', `${image}:1`])) as Array<{ Id: string; RepoDigests: string[] }>;
    assert.equal(inspect[0]!.Id, imageId);
    assert.ok(inspect[0]!.RepoDigests.includes(`${image}@${pushedDigest}`), JSON.stringify(inspect[0]!.RepoDigests));
  });

  it('a second pull reports the image up to date', async () => {
    const out = await ok(daemon, ['pull', `${image}:1`]);
    assert.match(out, new RegExp(`Status: Image is up to date for ${image.replace(/\./g, '\\.')}:1`));
    assert.doesNotMatch(out, /Pull complete/);
  });

  it('pulling a missing tag fails with manifest unknown', async () => {
    const r = await docker(daemon, ['pull', `${image}:missing`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`manifest for ${image.replace(/\./g, '\\.')}:missing not found: manifest unknown`));
  });
  it('pulls through a manifest list, picking the host platform', async () => {
    const own = await registry.get('/v2/test/busybox/manifests/1', { Accept: MANIFEST_V2 });
    const arch = GOARCH[process.arch] ?? process.arch;
    const other = arch === 'amd64' ? 'arm64' : 'amd64';
    // The foreign entry points at a manifest that does not exist on its own tag: picking it would fail the pull.
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_LIST,
        manifests: [
          { mediaType: MANIFEST_V2, digest: pushedDigest, size: own.body.length, platform: { os: 'linux', architecture: other } },
          { mediaType: MANIFEST_V2, digest: pushedDigest, size: own.body.length, platform: { os: 'linux', architecture: arch } },
        ],
      }),
    );
    const put = await registry.request('PUT', '/v2/test/busybox/manifests/multi', { 'Content-Type': MANIFEST_LIST }, list);
    assert.equal(put.status, 201, put.body.toString());
    const listDigest = String(put.headers['docker-content-digest']);
    const out = await ok(daemon, ['pull', `${image}:multi`]);
    assert.match(out, new RegExp(`Digest: ${listDigest}`));
    assert.equal((await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', `${image}:multi`])).trim(), imageId);

    const none = await registry.request('PUT', '/v2/test/busybox/manifests/foreign', { 'Content-Type': MANIFEST_LIST }, Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_LIST, manifests: [{ mediaType: MANIFEST_V2, digest: pushedDigest, size: own.body.length, platform: { os: 'linux', architecture: 'mips64le' } }] }),
    ));
    assert.equal(none.status, 201, none.body.toString());
    // The same through an OCI index, picked by an explicit --platform.
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: MANIFEST_V2, digest: pushedDigest, size: own.body.length, platform: { os: 'linux', architecture: arch } }],
      }),
    );
    const putIndex = await registry.request('PUT', '/v2/test/busybox/manifests/oci-index', { 'Content-Type': 'application/vnd.oci.image.index.v1+json' }, index);
    assert.equal(putIndex.status, 201, putIndex.body.toString());
    const viaIndex = await ok(daemon, ['pull', '--platform', `linux/${arch}`, `${image}:oci-index`]);
    assert.match(viaIndex, new RegExp(`Digest: ${sha256(index)}`));
    await ok(daemon, ['rmi', `${image}:oci-index`]);

    const wrongPlatform = await docker(daemon, ['pull', '--platform', 'linux/mips64le', `${image}:multi`]);
    assert.equal(wrongPlatform.status, 1, wrongPlatform.stdout);
    assert.match(wrongPlatform.stderr, /no matching manifest for linux\/mips64le in the manifest list entries/);
    const refused = await docker(daemon, ['pull', `${image}:foreign`]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /no matching manifest for linux\/\w+ in the manifest list entries/);
  });

  it('refuses a layer whose bytes do not match its digest and registers nothing', async () => {
    const manifest = JSON.parse((await registry.get('/v2/test/busybox/manifests/1', { Accept: MANIFEST_V2 })).body.toString()) as { layers: Array<{ digest: string }> };
    const hex = manifest.layers[0]!.digest.slice(7);
    await ok(daemon, ['rmi', `${image}:1`, `${image}:multi`]);
    assert.equal((await ok(daemon, ['images', '-a', '-q'])).trim(), '');
    // Same size, the last byte (tar padding) changed, straight in the registry's storage: the registry
    // serves it as is, and only the digest check can notice.
    const file = await open(join(registry.dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), 'r+');
    try {
      const last = (await file.stat()).size - 1;
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, last);
      byte[0] = byte[0]! ^ 0xff;
      await file.write(byte, 0, 1, last);
    } finally {
      await file.close();
    }
    const r = await docker(daemon, ['pull', `${image}:1`]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr + r.stdout, new RegExp(`digest mismatch for blob sha256:${hex}`));
    assert.equal((await ok(daemon, ['images', '-a', '-q'])).trim(), '');
    assert.notEqual((await docker(daemon, ['image', 'inspect', `${image}:1`])).status, 0);
  });
  it('round-trips a 4-layer image: later layers download while earlier ones are applied', async () => {
    const big = (seed: number) => Buffer.from(Array.from({ length: 512 * 1024 }, (_, i) => (i * seed) % 253));
    const { archive, image: built } = await makeImageArchive(
      [{ files: { 'a/one': big(3) } }, { files: { 'b/two': big(5) } }, { files: { 'c/three': big(7) }, deletes: ['a/one'] }, { files: { 'd/four': 'four\n' } }],
      { repoTags: [`${registry.host}/test/layers:4`] },
    );
    await ok(daemon, ['load'], archive);
    const pushed = await ok(daemon, ['push', `${registry.host}/test/layers:4`]);
    const digest = /4: digest: (sha256:[a-f0-9]{64})/.exec(pushed)?.[1];
    assert.ok(digest, pushed);
    await ok(daemon, ['rmi', `${registry.host}/test/layers:4`]);
    const out = await ok(daemon, ['pull', `${registry.host}/test/layers:4`]);
    assert.equal(out.match(/Pull complete/g)?.length, 4, out);
    assert.match(out, new RegExp(`Digest: ${digest}`));
    const inspect = JSON.parse(await ok(daemon, ['image', 'inspect', `${registry.host}/test/layers:4`])) as Array<{ Id: string; RootFS: { Layers: string[] } }>;
    assert.equal(inspect[0]!.Id, built.id);
    assert.deepEqual(inspect[0]!.RootFS.Layers, built.diffIds);
    await ok(daemon, ['rmi', `${registry.host}/test/layers:4`]);
  });

  it('pulls an OCI image with a gzip layer that another client pushed', async () => {
    const tar = await busyboxRootfsTar();
    // Level 1: not the bytes our push made (default level), whose blob an earlier test corrupted.
    const gz = gzipSync(tar, { level: 1 });
    const layerDigest = await uploadBlob(registry, 'test/gz', gz);
    const config = Buffer.from(
      JSON.stringify({ architecture: GOARCH[process.arch] ?? process.arch, os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] }, history: [{ created_by: 'uploaded by the test' }] }),
    );
    const configDigest = await uploadBlob(registry, 'test/gz', config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: gz.length }],
      }),
    );
    const put = await registry.request('PUT', '/v2/test/gz/manifests/oci', { 'Content-Type': OCI_MANIFEST }, manifest);
    assert.equal(put.status, 201, put.body.toString());
    const out = await ok(daemon, ['pull', `${registry.host}/test/gz:oci`]);
    assert.match(out, new RegExp(`${layerDigest.slice(7, 19)}: Pull complete`));
    assert.match(out, new RegExp(`Digest: ${sha256(manifest)}`));
    assert.equal((await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', `${registry.host}/test/gz:oci`])).trim(), configDigest);
    await ok(daemon, ['rmi', `${registry.host}/test/gz:oci`]);
  });
});

describe('registry-v2: docker run pulls a missing image', () => {
  let registry: TestRegistry;
  let daemon: Daemon;

  before(async () => {
    registry = await startRegistry();
    daemon = await startDaemon({
      plugins: ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/containers', '@tsengine/registry-v2'],
      config: { graphdriver: 'overlay' },
    });
  });
  after(async () => {
    await daemon?.stop();
    await registry?.stop();
  });

  it('docker run of an image that is only in the registry pulls it first', async () => {
    const image = `${registry.host}/run/busybox:1`;
    const tar = await busyboxRootfsTar();
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', image], tar);
    await ok(daemon, ['push', image]);
    // A fresh daemon's gzip of the layer is byte for byte zlib's default: the layer digest is stable.
    const manifest = JSON.parse((await registry.get('/v2/run/busybox/manifests/1', { Accept: MANIFEST_V2 })).body.toString()) as { layers: Array<{ digest: string }> };
    assert.equal(manifest.layers[0]!.digest, sha256(gzipSync(tar)));
    await ok(daemon, ['rmi', image]);
    const r = await docker(daemon, ['run', '--rm', image, 'echo', 'pulled and ran']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`Unable to find image '${image.replace(/\./g, '\\.')}' locally`));
    assert.match(r.stdout, /pulled and ran/);
  });
});

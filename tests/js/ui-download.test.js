// The model download's logic without a browser (app/ui/file_fetch.js, downloader.js, pool.js, download_progress.js,
// reconnect.js, download_lease.js): byte-range resume, one failing file among many, running out of storage, honest
// progress figures, retrying against the server, one download per origin. tests/pwa proves the wiring in Chromium.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { DownloadTally, progressText } from '../../app/ui/download_progress.js';
import { withDownloadLease } from '../../app/ui/download_lease.js';
import { downloadModel } from '../../app/ui/downloader.js';
import { BadBytes, Partial, fetchFile, parseContentRange } from '../../app/ui/file_fetch.js';
import { ModelStore } from '../../app/ui/model_store.js';
import { runPool } from '../../app/ui/pool.js';
import { Reconnector } from '../../app/ui/reconnect.js';

/** @param {Uint8Array} b */
const sha = (b) => createHash('sha256').update(b).digest('hex');

/** @param {number} n @param {number} seed */
function bytes(n, seed) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

/**
 * A server as fetch: files by URL; `ranges` answers Range requests; `cutAt(url, attempt)` returns where to cut the
 * body of that attempt (a TypeError from the stream, as a dropped connection gives), or null.
 * @param {Map<string, Uint8Array>} files
 * @param {{ranges?: boolean, cutAt?: (url: string, n: number) => number | null,
 *   fail?: (url: string, n: number) => number | null, quota?: boolean}} [o]
 */
function fakeServer(files, o = {}) {
  /** @type {{url: string, range: string | null}[]} */
  const log = [];
  /** @type {Map<string, number>} */
  const seen = new Map();
  /** @type {typeof fetch} */
  const fetchFn = async (input, init) => {
    const url = String(input);
    const n = (seen.get(url) ?? 0) + 1;
    seen.set(url, n);
    const headers = new Headers(/** @type {any} */ (init?.headers));
    const range = headers.get('range');
    log.push({ url, range });
    const status = o.fail?.(url, n);
    if (status) return new Response('no', { status });
    const data = files.get(url);
    if (!data) return new Response('missing', { status: 404 });
    let body = data;
    let code = 200;
    /** @type {Record<string, string>} */
    const h = { 'content-type': 'application/octet-stream', etag: '"v1"' };
    const m = range && /^bytes=(\d+)-$/.exec(range);
    if (o.ranges && m) {
      const start = Number(m[1]);
      body = data.subarray(start);
      code = 206;
      h['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const cut = o.cutAt?.(url, n);
    let sent = false;
    const stream = new ReadableStream({
      pull(c) {
        if (sent) {
          c.error(new TypeError('network error')); // the connection drops after the first part
          return;
        }
        sent = true;
        c.enqueue(body.slice(0, cut ?? undefined));
        if (cut === null || cut === undefined) c.close();
      },
    });
    return new Response(stream, { status: code, headers: h });
  };
  return { fetch: fetchFn, log };
}

/** Cache Storage in memory (what ModelStore uses of it). */
class FakeCache {
  constructor(/** @type {{full: boolean}} */ quota) {
    /** @type {Map<string, {body: ArrayBuffer, headers: Headers}>} */
    this.map = new Map();
    this.quota = quota;
  }

  /** @param {RequestInfo | URL} key */
  async match(key) {
    const hit = this.map.get(String(key instanceof Request ? key.url : key));
    return hit ? new Response(hit.body.slice(0), { headers: hit.headers }) : undefined;
  }

  /** @param {RequestInfo | URL} key @param {Response} res */
  async put(key, res) {
    if (this.quota.full) throw new DOMException('quota', 'QuotaExceededError');
    this.map.set(String(key), { body: await res.arrayBuffer(), headers: res.headers });
  }

  async keys() {
    return [...this.map.keys()].map((u) => new Request(u));
  }

  /** @param {RequestInfo | URL} key */
  async delete(key) {
    return this.map.delete(String(key instanceof Request ? key.url : key));
  }
}

class FakeCaches {
  constructor() {
    /** @type {Map<string, FakeCache>} */
    this.map = new Map();
    this.quota = { full: false };
  }

  /** @param {string} name */
  async open(name) {
    if (!this.map.has(name)) this.map.set(name, new FakeCache(this.quota));
    return /** @type {FakeCache} */ (this.map.get(name));
  }

  /** @param {string} name */
  async has(name) {
    return this.map.has(name);
  }

  async keys() {
    return [...this.map.keys()];
  }

  /** @param {string} name */
  async delete(name) {
    return this.map.delete(name);
  }
}

const BASE = 'http://app.test/';

/** A model version of `n` files of `size` bytes, its index entry, and the server's files by URL. */
function model(n = 6, size = 4000) {
  const files = Array.from({ length: n }, (_, i) => {
    const data = bytes(size + i, i + 1);
    return { path: `weights-${i}.bin`, size: data.length, sha256: sha(data), data };
  });
  const packageId = 'a'.repeat(64);
  const manifest = new TextEncoder().encode(JSON.stringify({
    package_id: packageId, files: files.map(({ path, size: s, sha256 }) => ({ path, size: s, sha256 })),
  }));
  const entry = {
    dir: 'm', url: 'models/m/', name: 'm', package_id: packageId, files: n + 1, manifest_size: manifest.length,
    manifest_sha256: sha(manifest), size: manifest.length + files.reduce((s, f) => s + f.size, 0), format_version: 1,
  };
  const served = new Map([[`${BASE}models/m/manifest.json`, manifest]]);
  for (const f of files) served.set(`${BASE}models/m/${f.path}`, f.data);
  return { entry, files, served };
}

const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, storage: undefined, concurrency: 3 };

test('a cut transfer continues by byte range, and the whole file is verified', async () => {
  const data = bytes(10000, 3);
  const file = { path: 'w.bin', size: data.length, sha256: sha(data) };
  const srv = fakeServer(new Map([['u', data]]), { ranges: true, cutAt: (_u, n) => (n === 1 ? 6000 : null) });
  const partial = new Partial(file.size);
  let counted = 0;
  await assert.rejects(fetchFile(srv.fetch, 'u', file, partial, (d) => { counted += d; }), TypeError);
  assert.equal(partial.got, 6000);
  assert.equal(counted, 6000); // the received bytes still count: they are kept
  const got = await fetchFile(srv.fetch, 'u', file, partial, (d) => { counted += d; });
  assert.equal(got.resumedFrom, 6000);
  assert.deepEqual(srv.log.map((l) => l.range), [null, 'bytes=6000-']);
  assert.equal(sha(got.data), file.sha256);
  assert.equal(counted, 10000);
});

test('a server that ignores ranges sends the whole file again, which starts over', async () => {
  const data = bytes(5000, 4);
  const file = { path: 'w.bin', size: data.length, sha256: sha(data) };
  const srv = fakeServer(new Map([['u', data]]), { ranges: false, cutAt: (_u, n) => (n === 1 ? 3000 : null) });
  const partial = new Partial(file.size);
  let counted = 0;
  await assert.rejects(fetchFile(srv.fetch, 'u', file, partial, (d) => { counted += d; }), TypeError);
  const got = await fetchFile(srv.fetch, 'u', file, partial, (d) => { counted += d; });
  assert.equal(srv.log[1].range, 'bytes=3000-');
  assert.equal(sha(got.data), file.sha256);
  assert.equal(counted, 5000); // the first 3000 were taken back when the 200 came
});

test('a range answer that does not continue the file, or a bad hash after a resume, starts from byte 0', async () => {
  const data = bytes(4000, 5);
  const file = { path: 'w.bin', size: data.length, sha256: sha(data) };
  /** @type {typeof fetch} */
  const wrongRange = async () => new Response(data.subarray(100), {
    status: 206, headers: { 'content-range': `bytes 100-3999/4000` },
  });
  const partial = new Partial(file.size);
  partial.data = new Uint8Array(file.size);
  partial.got = 2000;
  await assert.rejects(fetchFile(wrongRange, 'u', file, partial, () => {}), BadBytes);
  assert.equal(partial.got, 0);

  const damaged = data.slice();
  damaged[10] ^= 0xff; // the kept prefix was damaged
  partial.data = damaged;
  partial.got = 2000;
  const srv = fakeServer(new Map([['u', data]]), { ranges: true });
  await assert.rejects(fetchFile(srv.fetch, 'u', file, partial, () => {}), /sha256/);
  assert.equal(partial.got, 0);
  const got = await fetchFile(srv.fetch, 'u', file, partial, () => {});
  assert.equal(sha(got.data), file.sha256);
  assert.equal(srv.log[1].range, null);
  assert.deepEqual(parseContentRange('bytes 5-9/10'), { start: 5, end: 9, total: 10 });
});

test('one failing item does not stop the pool; a fatal one stops new items but lets running ones finish', async () => {
  /** @type {number[]} */
  const done = [];
  await assert.rejects(runPool([1, 2, 3, 4, 5, 6], 2, async (i, signal) => {
    await new Promise((r) => setTimeout(r, i === 1 ? 20 : 1));
    if (i === 2) throw new Error('two');
    assert.equal(signal.aborted, false);
    done.push(i);
  }), /two/);
  assert.deepEqual(done.sort(), [1, 3, 4, 5, 6]);

  /** @type {number[]} */

  const started = [];
  /** @type {number[]} */
  const finished = [];
  await assert.rejects(runPool([1, 2, 3, 4, 5], 2, async (i) => {
    started.push(i);
    if (i === 2) throw new Error('fatal');
    await new Promise((r) => setTimeout(r, 10));
    finished.push(i);
  }, undefined, (e) => /fatal/.test(String(e))), /fatal/);
  assert.deepEqual(started, [1, 2]);
  assert.deepEqual(finished, [1]); // the running one finished; nothing new started
});

test('a file that keeps failing does not cost the others: every other file is stored', async () => {
  const { entry, files, served } = model(6);
  const bad = `${BASE}models/m/${files[2].path}`;
  const srv = fakeServer(served, { fail: (u) => (u === bad ? 500 : null) });
  const caches = new FakeCaches();
  const store = new ModelStore(/** @type {any} */ (caches), BASE);
  await assert.rejects(downloadModel(store, /** @type {any} */ (entry), { ...FAST, fetch: srv.fetch }),
    { name: 'ServerFileError' });
  const stored = await store.storedPaths(await store.open(/** @type {any} */ (entry)), /** @type {any} */ (entry), files);
  assert.deepEqual([...stored].sort(), files.filter((_, i) => i !== 2).map((f) => f.path).sort());
});

test('out of storage: stop, keep the verified files, drop partial junk, say how much the rest needs', async () => {
  const { entry, files, served } = model(6);
  const caches = new FakeCaches();
  const store = new ModelStore(/** @type {any} */ (caches), BASE);
  let puts = 0;
  const cache = /** @type {FakeCache} */ (/** @type {unknown} */ (await store.open(/** @type {any} */ (entry))));
  const realPut = cache.put.bind(cache);
  cache.put = async (key, res) => {
    if (++puts > 3) throw new DOMException('quota', 'QuotaExceededError'); // the manifest and two files fit
    return realPut(key, res);
  };
  await cache.map.set(`${BASE}models/m/junk.bin`, { body: new ArrayBuffer(3), headers: new Headers() });
  const srv = fakeServer(served);
  /** @type {any[]} */
  const reports = [];
  const partials = new Map();
  const err = await downloadModel(store, /** @type {any} */ (entry), {
    ...FAST, concurrency: 1, fetch: srv.fetch, partials, onProgress: (p) => reports.push(p),
  }).catch((e) => e);
  assert.equal(err.name, 'StorageFullError');
  const kept = await store.storedPaths(/** @type {any} */ (cache), /** @type {any} */ (entry), files);
  assert.equal(kept.size, 2);
  const keptBytes = entry.manifest_size + files.filter((f) => kept.has(f.path)).reduce((s, f) => s + f.size, 0);
  assert.equal(err.needBytes, entry.size - keptBytes);
  assert.match(err.message, /needs about .* more/);
  assert.equal(cache.map.size, 3); // the manifest and the two files; the junk is gone
  assert.equal(partials.size, 0);
  assert.equal(srv.log.length, 4, 'no new file started after the device was full');
  const last = reports[reports.length - 1];
  assert.equal(last.phase, 'stopped');
  assert.equal(last.bytesDone, keptBytes);
  assert.equal(progressText(last).eta, 'stopped');
});

test('a download cut in a session and run again continues the cut files by range', async () => {
  const { entry, served } = model(3, 20000);
  const srv = fakeServer(served, { ranges: true, cutAt: (u, n) => {
    if (!u.endsWith('weights-0.bin')) return null;
    return n === 1 ? 12000 : n <= 3 ? 0 : null; // the first run's three attempts are cut, the next run's is not
  } });
  const caches = new FakeCaches();
  const store = new ModelStore(/** @type {any} */ (caches), BASE);
  const partials = new Map();
  await assert.rejects(downloadModel(store, /** @type {any} */ (entry), {
    ...FAST, fetch: srv.fetch, partials,
  }), { name: 'DownloadInterruptedError' });
  await downloadModel(store, /** @type {any} */ (entry), { ...FAST, fetch: srv.fetch, partials });
  const w0 = srv.log.filter((l) => l.url.endsWith('weights-0.bin')).map((l) => l.range);
  assert.deepEqual(w0, [null, 'bytes=12000-', 'bytes=12000-', 'bytes=12000-']);
});

test('progress: files count when stored, "done" only when every file is, a stop shows what is stored', () => {
  const t = new DownloadTally(1000, 4, 100, 1, () => 0);
  t.received(300);
  let p = t.progress();
  assert.equal(p.bytesDone, 400);
  assert.equal(p.phase, 'running');
  t.stored(300, 300);
  t.received(600); // two more files' worth of bytes arrive, but are not stored
  p = t.progress();
  assert.equal(p.bytesDone, 1000);
  assert.notEqual(progressText(p).eta, 'done');
  t.stop();
  p = t.progress();
  assert.equal(p.phase, 'stopped');
  assert.equal(progressText(p).bytes, '400 bytes of 1.0 kB stored');
  assert.equal(progressText(p).files, '2 of 4');
  const all = new DownloadTally(10, 1, 0, 0, () => 0);
  all.received(10);
  all.stored(10, 10);
  all.finish();
  assert.equal(progressText(all.progress()).eta, 'done');
});

test('the reconnector asks the server with growing waits until it answers; nudge asks at once', async () => {
  let asked = 0;
  /** @type {number[]} */
  const waits = [];
  const r = new Reconnector(async () => ++asked >= 3, { baseMs: 4, maxMs: 16 });
  await r.wait(undefined, (ms) => waits.push(ms));
  assert.equal(asked, 3);
  assert.ok(waits[2] >= waits[0]);
  const slow = new Reconnector(async () => true, { baseMs: 60000, maxMs: 60000 });
  const started = Date.now();
  const p = slow.wait();
  setTimeout(() => slow.nudge(), 5);
  await p;
  assert.ok(Date.now() - started < 5000);
  const never = new Reconnector(async () => false, { baseMs: 1, maxMs: 1 });
  const stop = new AbortController();
  setTimeout(() => stop.abort(new Error('stopped')), 20);
  await assert.rejects(never.wait(stop.signal), /stopped/);
});

test('one download per origin: a second tab follows the first one\'s progress, then finds the files stored', async () => {
  /** A lock manager like navigator.locks, for one origin. */
  const held = new Map();
  const locks = {
    /** @param {string} name @param {any} a @param {any} [b] */
    async request(name, a, b) {
      const opts = b ? a : {};
      const cb = b ?? a;
      if (opts.ifAvailable && held.has(name)) return cb(null);
      while (held.has(name)) await held.get(name);
      let release = () => {};
      held.set(name, new Promise((r) => { release = () => r(undefined); }));
      try {
        return await cb({ name });
      } finally {
        held.delete(name);
        release();
      }
    },
  };
  let runs = 0;
  let letFirstFinish = () => {};
  const first = withDownloadLease('p', { locks: /** @type {any} */ (locks) }, async (publish) => {
    runs++;
    publish(/** @type {any} */ ({ filesDone: 3 }));
    await new Promise((r) => { letFirstFinish = () => r(undefined); });
    return 'first';
  });
  /** @type {string[]} */
  const events = [];
  /** @type {number[]} */
  const seen = [];
  const second = withDownloadLease('p', {
    locks: /** @type {any} */ (locks), onFollow: () => events.push('follow'), onLead: () => events.push('lead'),
    onRemoteProgress: (p) => seen.push(p.filesDone),
  }, async (publish) => {
    publish(/** @type {any} */ ({ filesDone: 9 }));
    return 'second found everything stored';
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(events, ['follow']);
  const firstChannel = new BroadcastChannel('fieldllm-download:p');
  firstChannel.postMessage({ type: 'progress', progress: { filesDone: 5 } });
  await new Promise((r) => setTimeout(r, 20));
  firstChannel.close();
  assert.deepEqual(seen, [5]);
  letFirstFinish();
  assert.equal(await first, 'first');
  assert.equal(await second, 'second found everything stored');
  assert.deepEqual(events, ['follow', 'lead']);
  assert.equal(runs, 1);
});

test('the storage-full memo is kept outside Cache Storage, and a refused or unreadable memo does not throw', async () => {
  /** @type {Map<string, string>} */
  const items = new Map();
  const memo = {
    getItem: (/** @type {string} */ k) => items.get(k) ?? null,
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => void items.set(k, v),
    removeItem: (/** @type {string} */ k) => void items.delete(k),
  };
  const caches = new FakeCaches();
  const store = new ModelStore(/** @type {any} */ (caches), BASE, memo);
  assert.equal(await store.storageFullStop(), null);
  const stop = { package_id: 'p1', needBytes: 218000, free: 1000 };
  await store.noteStorageFull(stop);
  assert.deepEqual(await store.storageFullStop(), stop);
  assert.equal(caches.map.size, 0, 'no cache was opened: the memo is written when the quota is spent');
  await store.clearStorageFull();
  assert.equal(await store.storageFullStop(), null);

  items.set(store.fullKey, '{not json');
  assert.equal(await store.storageFullStop(), null);
  const refusing = new ModelStore(/** @type {any} */ (caches), BASE, { ...memo, setItem: () => {
    throw new DOMException('full', 'QuotaExceededError');
  } });
  await refusing.noteStorageFull(stop); // best effort: resolves
  const none = new ModelStore(/** @type {any} */ (caches), BASE, null);
  await none.noteStorageFull(stop);
  assert.equal(await none.storageFullStop(), null);
});

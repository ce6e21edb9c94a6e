// sw.js: the service worker. It keeps the app shell on the device and answers for it when there is no network,
// and serves model files from the model store by URL. It never runs inference and never downloads models: the page
// does that (app/ui/model_store.js, app/ui/downloader.js), because browsers stop service workers that run long.
//
// Precaching works like Workbox's, written small: every shell file is stored under a revisioned key
// (url?__rev=<sha256 prefix>), installed one at a time and checked against the sha256 the build recorded; activate
// deletes the keys the current list no longer has. A new sw.js (any shell change changes its precache list) installs
// beside the running one and waits; the page offers a reload, then asks it to take over (SKIP_WAITING).
//
// This is a classic script (not a module): every browser that has service workers can run it.

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/** @typedef {{url: string, size: number, sha256: string}} PrecacheEntry */

/** @type {PrecacheEntry[]} every app-shell file (service_worker/precache.py writes this list at build time) */
const PRECACHE_MANIFEST = []; // @precache-manifest
const BUILD_ID = 'dev'; // @build-id

const SHELL_CACHE_PREFIX = 'fieldllm-shell-';
const SHELL_CACHE = `${SHELL_CACHE_PREFIX}v1`; // bump the suffix only if the key scheme changes
// model versions live in caches named MODEL_CACHE_PREFIX + package_id; app/ui/model_store.js writes them
const MODEL_CACHE_PREFIX = 'fieldllm-model:';
const REVISION_PARAM = '__rev';
const APP_PAGE = 'index.html';
const MODELS_FOLDER = 'models/';
const MODELS_INDEX = 'models/index.json'; // always from the network: it is how the page learns of new versions
// tries per shell file during one install, waiting 0.5, 1, 2 s between; an install that still fails is registered
// again by the page (app/ui/sw_client.js), with backoff, in this session and on every start until it succeeds
const PRECACHE_ATTEMPTS = 4;
const PRECACHE_RETRY_MS = 500;
// Added to the shell this worker serves: the page and its workers are then cross-origin isolated, which gives them
// SharedArrayBuffer (the CPU engine's threads, app/engine/cpu/threads.js) even where the host sends neither (a plain
// static host; the first visit there stays unisolated, later starts are isolated). The app loads nothing
// cross-origin. app/server/headers.py CROSS_ORIGIN_ISOLATION sends the same from `fieldllm serve`.
const ISOLATION_HEADERS = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/** @param {string} path relative to the scope */
function scopeUrl(path) {
  return new URL(path, sw.registration.scope).href;
}

/** The cache key of one revision of a shell file. @param {PrecacheEntry} entry */
function precacheKey(entry) {
  const url = new URL(entry.url, sw.registration.scope);
  url.searchParams.set(REVISION_PARAM, entry.sha256.slice(0, 16));
  return url.href;
}

/** Absolute URL (no query) -> its entry. */
const PRECACHED = new Map(PRECACHE_MANIFEST.map((e) => [scopeUrl(e.url), e]));

/** @param {ArrayBuffer} data */
async function sha256Hex(data) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Waits `ms`. @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One shell file from the network, checked against the build's size and sha256. `cache: 'reload'` skips the HTTP
 * cache, which may still hold the previous version of the file. A network failure, a 5xx or 408/429 answer, or
 * bytes that do not match are tried again after a growing pause (a link that drops for a moment, a server
 * restarting, a proxy serving a half-written file); other statuses fail at once.
 * @param {PrecacheEntry} entry
 */
async function fetchVerified(entry) {
  for (let attempt = 1; ; attempt++) {
    let problem;
    try {
      const res = await fetch(scopeUrl(entry.url), { cache: 'reload', credentials: 'same-origin' });
      if (!res.ok) {
        problem = new Error(`precache: ${entry.url} answered HTTP ${res.status}; the installed app stays`);
        if (!(res.status >= 500 || res.status === 408 || res.status === 429)) throw problem;
      } else {
        const body = await res.arrayBuffer();
        if (body.byteLength === entry.size && (await sha256Hex(body)) === entry.sha256) {
          return new Response(body, { status: 200, statusText: 'OK', headers: res.headers });
        }
        // a server half-way through a deploy, or a proxy rewriting files: keep the installed version, retry later
        problem = new Error(`precache: ${entry.url} does not match this build's sha256; the installed app stays`);
      }
    } catch (e) {
      if (e === problem) throw e;
      problem = e; // the network: fetch's TypeError, or the body cut off
    }
    if (attempt >= PRECACHE_ATTEMPTS) throw problem;
    await sleep(PRECACHE_RETRY_MS * 2 ** (attempt - 1));
  }
}

/**
 * Stores every entry not already cached under its revision, one file at a time (a slow link is not flooded, and
 * an unchanged file is never fetched again).
 * @param {PrecacheEntry[]} entries
 */
async function precache(entries) {
  const cache = await caches.open(SHELL_CACHE);
  for (const entry of entries) {
    const key = precacheKey(entry);
    if (await cache.match(key)) continue;
    await cache.put(key, await fetchVerified(entry));
  }
}

/**
 * Deletes shell revisions the current list does not name, and shell caches of an older key scheme. Model caches
 * are the page's: left alone.
 * @param {PrecacheEntry[]} entries
 */
async function cleanupOutdatedCaches(entries) {
  for (const name of await caches.keys()) {
    if (name.startsWith(SHELL_CACHE_PREFIX) && name !== SHELL_CACHE) await caches.delete(name);
  }
  const keep = new Set(entries.map(precacheKey));
  const cache = await caches.open(SHELL_CACHE);
  for (const request of await cache.keys()) {
    if (!keep.has(request.url)) await cache.delete(request);
  }
}

/** The cached response for a shell URL (absolute, no query), or undefined. @param {string} url */
async function matchPrecache(url) {
  const entry = PRECACHED.get(url);
  if (!entry) return undefined;
  const cache = await caches.open(SHELL_CACHE);
  return cache.match(precacheKey(entry));
}

/** A verified model file from whichever model version holds this URL, or undefined. @param {string} url */
async function matchModelFile(url) {
  for (const name of await caches.keys()) {
    if (!name.startsWith(MODEL_CACHE_PREFIX)) continue;
    const hit = await (await caches.open(name)).match(url);
    if (hit) return hit;
  }
  return undefined;
}

/**
 * The response with ISOLATION_HEADERS set where it lacks them. A response with no readable status (opaque, or a
 * redirect a navigation follows itself) passes as it is.
 * @param {Response} res
 */
function isolated(res) {
  const missing = Object.entries(ISOLATION_HEADERS).filter(([name]) => !res.headers.has(name));
  if (res.status === 0 || missing.length === 0) return res;
  const headers = new Headers(res.headers);
  for (const [name, value] of missing) headers.set(name, value);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/** @param {string} url @param {Request} request */
async function cacheFirstShell(url, request) {
  return isolated((await matchPrecache(url)) ?? await fetch(request));
}

/** Every navigation in scope gets the app page (the app has one page). @param {Request} request */
async function serveNavigation(request) {
  return isolated((await matchPrecache(scopeUrl(APP_PAGE))) ?? await fetch(request));
}

/** @param {Request} request */
async function serveModelFile(request) {
  return (await matchModelFile(request.url)) ?? fetch(request);
}

sw.addEventListener('install', (event) => {
  // no skipWaiting here: a new version waits until the page has offered the user a reload
  event.waitUntil(precache(PRECACHE_MANIFEST));
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(cleanupOutdatedCaches(PRECACHE_MANIFEST).then(() => sw.clients.claim()));
});

sw.addEventListener('message', (event) => {
  const type = event.data && event.data.type;
  if (type === 'SKIP_WAITING') {
    sw.skipWaiting();
  } else if (type === 'GET_BUILD_ID') {
    event.source?.postMessage({ type: 'BUILD_ID', buildId: BUILD_ID });
  }
});

sw.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== sw.location.origin) return; // the app requests nothing cross-origin; leave it to the browser
  const bare = url.origin + url.pathname;
  const modelsRoot = scopeUrl(MODELS_FOLDER);
  if (bare === scopeUrl(MODELS_INDEX) || bare === scopeUrl('sw.js')) return;
  if (bare.startsWith(modelsRoot)) {
    // the downloader asks with cache: 'no-store' for bytes it will verify and store itself: straight to the
    // network, not through this worker (which the browser may stop during a long transfer)
    if (request.cache === 'no-store') return;
    event.respondWith(serveModelFile(request));
  } else if (PRECACHED.has(bare)) {
    event.respondWith(cacheFirstShell(bare, request));
  } else if (request.mode === 'navigate' && bare.startsWith(sw.registration.scope)) {
    event.respondWith(serveNavigation(request));
  }
});

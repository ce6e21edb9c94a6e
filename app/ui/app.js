// app.js: what the app does, in order. On start it reads which model version is active (model_store.js) and, when
// online, which one the server calls current (model_index.js); then either the first-run screen (probe, space check,
// download, activate), or it loads the active version, confirms it (or rolls back to the previous one) and offers a
// newer version, which downloads while the current one keeps answering. The engine is chosen on the device
// (engine_host.js, app/engine/choice.js): WebGPU on a real GPU that fits the model, else the CPU engine (WebAssembly)
// where the browser and the device's memory can hold it, else the fallback server that served the app, if it offers
// the API (also first, where the settings prefer it); the screen says which answers, why, and how fast it is.

import { AnswerLock } from './answer_lock.js';
import { ChatView } from './chat_view.js';
import { withDownloadLease } from './download_lease.js';
import { downloadModel } from './downloader.js';
import {
  ENGINE_LABELS, chooseDeviceEngine, connectServer, deviceAdvice, enginePreference, loadEngine, requireDevice,
  saveEnginePreference,
} from './engine_host.js';
import { DeviceUnsupportedError, ModelIndexError, messageOf, nameOf } from './errors.js';
import { answerWithoutStorage, serverHint } from './insecure.js';
import { formatBytes, shortVersion } from './format.js';
import { measureSpeed, speedText, storedSpeed } from './speed.js';
import { INDEX_URL, fetchModelIndex } from './model_index.js';
import { ModelStore } from './model_store.js';
import { Reconnector, serverProbe } from './reconnect.js';
import { freeSpace, storageUse } from './storage.js';
import { applyUpdate, registerServiceWorker } from './sw_client.js';
import { TaskScreens } from './task_screens.js';
import { DownloadView, View, setText } from './view.js';

/** @typedef {import('./model_index.js').ModelEntry} ModelEntry */
/** @typedef {import('./model_index.js').ModelIndex} ModelIndex */
/** @typedef {import('./model_store.js').StoreState} StoreState */
/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/** @typedef {import('./engine_host.js').DeviceChoice} DeviceChoice */
/** @typedef {import('../engine/index.js').EnginePreference} EnginePreference */
/**
 * @typedef {object} AppOptions
 * @property {number} concurrency   model files downloaded at once
 * @property {number} attempts      tries per file
 * @property {number} retryBaseMs   first retry delay, doubling
 * @property {number} retryMaxMs    longest retry delay
 * @property {number} maxTokens     longest answer, in tokens
 * @property {number | null} [taskMaxTokens]  a lower cap on the task screens' token limits (tasks.json's otherwise)
 * @property {number} [context]     KV positions for the engine (default: the engine's)
 * @property {number} [reconnectBaseMs]  first wait before asking the server again after a download stopped for the
 *   network (default 2 s, doubling up to reconnectMaxMs)
 * @property {number} [reconnectMaxMs]   longest such wait (default 60 s)
 * @property {number} [swRetryBaseMs]    first wait before registering the service worker again after its first
 *   install failed (default 2 s, doubling up to a minute)
 * @property {number} [indexCheckMs]     how often an open app asks the server for a newer model version (default 3 h;
 *   also whenever the network comes back)
 * @property {EnginePreference} [engine]  the site's engine preference (default "auto"); the user's, from the
 *   settings, overrides it
 * @property {boolean} [speedCheck]       time a few tokens on the first start of a version (default true)
 */

/** What each download failure is called on screen: body[data-state] and the title. */
const DOWNLOAD_PROBLEMS = /** @type {Record<string, [string, string]>} */ ({
  StorageFullError: ['storage-full', 'Not enough storage'],
  DownloadInterruptedError: ['download-interrupted', 'Download paused'],
  FileIntegrityError: ['integrity-failed', 'A file arrived damaged'],
  ServerFileError: ['server-error', 'The server could not provide the model'],
});
/** How long the first load waits for the service worker to take control (it is still caching the app shell). */
const SW_WAIT_MS = 60000;
const INDEX_CHECK_MS = 3 * 3600 * 1000;
/** Engine load failures that a fresh download of the version may fix. */
const REINSTALLABLE = new Set(['FetchError', 'IntegrityError', 'FormatError']);
/** Engine load failures that mean "not this engine here": the next engine of the device is tried. */
const UNAVAILABLE = new Set(['WebGPUUnavailableError', 'CpuUnavailableError']);
/** Where each engine of the device computes, for the task cards' provenance ("Computed on this device's CPU"). */
const COMPUTED_ON = { webgpu: 'on this device (WebGPU)', cpu: "on this device's CPU" };

/**
 * A probe's reason without the advice it ends with (": use the local fallback server"), where the device answers
 * anyway and the advice would mislead.
 * @param {string | null} reason
 */
function withoutAdvice(reason) {
  return String(reason).replace(/:\s*(use|choose|update|close)\b[^;]*$/, '');
}

/** @returns {Storage | null} */
function localStore() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

export class App {
  /** @param {Document} doc @param {AppOptions} options */
  constructor(doc, options) {
    this.doc = doc;
    this.options = options;
    this.view = new View(doc);
    /** one answer at a time, across the chat and the task screens */
    this.lock = new AnswerLock();
    this.chat = new ChatView(doc, { maxTokens: options.maxTokens }, this.lock);
    this.tasks = new TaskScreens(doc, this.lock, { maxTokens: options.taskMaxTokens ?? null });
    /** @type {ModelStore | null} */
    this.store = null;
    /** @type {StoreState} */
    this.state = { active: null, previous: null, confirmed: false, rejected: [] };
    /** @type {ModelIndex | null} null: offline, or the server could not say */
    this.index = null;
    /** @type {unknown} why the index could not be read (shown only when there is nothing installed) */
    this.indexError = null;
    /** @type {ChatEngine | null} */
    this.engine = null;
    /** @type {string} shown above the conversation once the model is ready */
    this.pendingNotice = '';
    /** @type {string} why the app does not work offline yet (the service worker's first install failed) */
    this.offlineNotice = '';
    /** @type {import('./sw_client.js').ServiceWorkerSetup | null} */
    this.sw = null;
    /** bytes of cut transfers, by URL: a download run again in this session continues them by byte range */
    this.partials = new Map();
    /** asks the server, with backoff, whether it answers again after a download stopped for the network */
    this.reconnector = new Reconnector(serverProbe(globalThis.fetch.bind(globalThis), INDEX_URL),
      { baseMs: options.reconnectBaseMs ?? 2000, maxMs: options.reconnectMaxMs ?? 60000 });
    /** @type {AbortController | null} the wait for the server, while one runs */
    this.reconnecting = null;
    this.updating = false;
    /** which engine the user (settings) or the site prefers */
    this.preference = enginePreference(options.engine);
    /** @type {'webgpu' | 'cpu' | null} the device engine in use */
    this.kind = null;
  }

  /** The settings' "Answers from" choice: stored on this device, applied by reloading once no answer runs. */
  wirePreference() {
    const select = /** @type {HTMLSelectElement} */ (this.view.el('engine-preference'));
    select.value = this.preference;
    select.onchange = async () => {
      saveEnginePreference(/** @type {EnginePreference} */ (select.value));
      select.disabled = true;
      await this.lock.whenIdle();
      location.reload();
    };
  }

  async start() {
    this.view.network(navigator.onLine);
    addEventListener('online', () => {
      this.view.network(true);
      this.reconnector.nudge();
      this.checkForNewVersion();
    });
    addEventListener('offline', () => this.view.network(false));
    this.wirePreference();
    setInterval(() => this.checkForNewVersion(), this.options.indexCheckMs ?? INDEX_CHECK_MS);
    if (!globalThis.isSecureContext || typeof caches === 'undefined') {
      // plain http from another device (no service worker, storage or WebGPU), or a private window: the server answers
      await answerWithoutStorage(this);
      return;
    }
    this.startServiceWorker();
    this.store = new ModelStore(caches, this.doc.baseURI);
    this.state = await this.store.readState();
    this.index = await this.readIndex();
    // only when the server said which version is current: offline, a half-downloaded update must survive
    if (this.index) await this.store.cleanup(this.keepIds());
    if (this.state.active) {
      await this.openActive();
    } else {
      await this.showSetup();
    }
  }

  startServiceWorker() {
    const banner = this.view.el('app-update');
    this.sw = registerServiceWorker({
      onUpdateReady: (reg) => {
        banner.hidden = false;
        /** @type {HTMLButtonElement} */ (this.view.el('app-update-reload')).onclick = async () => {
          // a running answer is finished first; the conversation itself survives the reload (conversation.js)
          this.view.el('app-update-wait').hidden = !this.lock.busy;
          await this.lock.whenIdle();
          applyUpdate(reg);
        };
      },
      onTakenOver: () => this.view.notice('The app was updated in another tab. Reload this page when convenient.'),
      onInstallFailed: (_attempt, waitMs) => {
        this.offlineNotice = 'Offline use is not set up yet: the app\'s own files could not all be stored on this ' +
          `device. Trying again in ${Math.max(1, Math.round(waitMs / 1000))} s; keep this page open while online.`;
        if (this.doc.body.dataset.state === 'ready') this.showOfflineReadiness();
      },
      onControlled: () => {
        if (this.doc.body.dataset.state === 'ready') this.showOfflineReadiness();
      },
    }, { baseMs: this.options.swRetryBaseMs ?? 2000, maxMs: 60000 });
  }

  /** "Ready offline" only when the shell (a controlling service worker) and the model are both stored. */
  showOfflineReadiness() {
    const offline = !!this.sw?.controlled;
    this.doc.body.dataset.offline = offline ? 'ready' : 'pending';
    setText(this.view.el('ready-title'), offline ? 'Ready offline' : 'Ready (not yet offline)');
    const notice = this.view.el('notice');
    if (offline && notice.textContent === this.offlineNotice) this.view.notice('');
    if (!offline && this.offlineNotice) this.view.notice(this.offlineNotice);
  }

  /**
   * Runs `run` once the server answers again (asked with backoff, and at once when the browser reports the network
   * back); a later call, or the user's own "Try again", replaces the wait.
   * @param {() => void} run
   */
  whenServerAnswers(run) {
    this.reconnecting?.abort();
    const wait = new AbortController();
    this.reconnecting = wait;
    this.reconnector.wait(wait.signal).then(() => {
      if (this.reconnecting !== wait) return;
      this.reconnecting = null;
      run();
    }, () => {});
  }

  /** The server's model list again (the network came back, or hours passed): offer a newer version if any. */
  async checkForNewVersion() {
    if (!this.state.active || this.doc.body.dataset.engine !== 'device' || this.updating) return;
    try {
      this.index = await fetchModelIndex(globalThis.fetch.bind(globalThis));
    } catch {
      return; // offline or the server is away: the next check will tell
    }
    if (this.engine) await this.offerUpdate();
  }

  /** @returns {Promise<ModelIndex | null>} */
  async readIndex() {
    if (!navigator.onLine) return null; // offline: no request at all, the store says what is installed
    try {
      return await fetchModelIndex(globalThis.fetch.bind(globalThis));
    } catch (e) {
      this.indexError = e instanceof ModelIndexError ? e : null; // a network failure just means "offline"
      return null;
    }
  }

  /** Model versions whose files must stay: in use, the fallback, and the server's current one (to resume). */
  keepIds() {
    const ids = [this.state.active?.package_id, this.state.previous?.package_id];
    const current = this.index?.current;
    if (current && !this.state.rejected.includes(current.package_id)) ids.push(current.package_id);
    return /** @type {string[]} */ (ids.filter(Boolean));
  }

  // --- first run ------------------------------------------------------------------------------------------------

  async showSetup() {
    const entry = this.index?.current;
    const store = /** @type {ModelStore} */ (this.store);
    if (!entry) {
      const reload = { label: 'Try again', run: () => location.reload() };
      if (this.indexError) {
        this.view.problem('no-model', 'No model to install', messageOf(this.indexError), reload);
      } else {
        this.view.problem('offline-first-run', 'Not installed yet', 'This device has no model yet. Connect once ' +
          'to the network that serves this app: the model downloads once, then the assistant works offline.', reload);
        this.whenServerAnswers(() => location.reload());
      }
      return;
    }
    setText(this.view.el('setup-name'), entry.name);
    setText(this.view.el('setup-version'), shortVersion(entry.package_id));
    setText(this.view.el('setup-size'), formatBytes(entry.size));
    const choice = await chooseDeviceEngine(undefined, this.preference, { context: this.options.context });
    if (choice.order[0] === 'server') {
      // the settings prefer the server (the device's own engines stay the fallback), or this device has no engine
      await this.useServer(choice.reason, false, {
        preferred: this.preference === 'server',
        fallback: choice.device.length ? () => this.offerSetup(entry, choice) : null,
      });
      return;
    }
    await this.offerSetup(entry, choice);
  }

  /**
   * The first-run screen: what will be downloaded and where it will run, and the button (or carry on with a
   * download begun before).
   * @param {ModelEntry} entry @param {DeviceChoice} choice
   */
  async offerSetup(entry, choice) {
    const store = /** @type {ModelStore} */ (this.store);
    setText(this.view.el('setup-engine'), ENGINE_LABELS[choice.device[0] ?? 'server']);
    const button = /** @type {HTMLButtonElement} */ (this.view.el('setup-download'));
    button.onclick = () => this.install(entry);
    this.view.show('setup');
    if (await store.hasAny(entry)) {
      // the user started this download before: carry on from the verified files without asking again, unless it
      // stopped for want of storage and the space has not changed since (it would only fill the disk again)
      const full = await store.storageFullStop();
      if (full?.package_id === entry.package_id && !(await this.spaceChanged(full))) {
        this.showStorageFull(entry, full.needBytes);
        return;
      }
      await this.install(entry, true);
    }
  }

  /**
   * Has free space grown since a download stopped for want of it? Unknown counts as no.
   * @param {{needBytes: number, free: number | null}} stop
   */
  async spaceChanged(stop) {
    const free = await freeSpace(navigator.storage);
    return stop.free !== null && free !== null && free - stop.free >= Math.min(stop.needBytes, 1e6) / 2;
  }

  /** @param {ModelEntry} entry @param {number} needBytes */
  showStorageFull(entry, needBytes) {
    this.view.problem('storage-full', 'Not enough storage', `The download stopped because the device ran out of ` +
      `storage, and the space has not changed since. The rest of the model needs about ${formatBytes(needBytes)} ` +
      'more. Free that much space (remove files, apps or other sites\' offline data), then press "Try again": the ' +
      'files already verified are kept.', { label: 'Try again', run: () => this.install(entry) });
  }

  /** @param {string} text */
  setupNote(text) {
    const note = this.view.el('setup-note');
    setText(note, text);
    note.hidden = !text;
  }

  /** @param {ModelEntry} entry @param {boolean} [resumed]  carrying on a download begun before */
  async install(entry, resumed = false) {
    this.reconnecting?.abort();
    this.reconnecting = null;
    const button = /** @type {HTMLButtonElement} */ (this.view.el('setup-download'));
    button.disabled = true;
    this.setupNote('');
    this.view.show('setup', 'downloading');
    let followed = false;
    try {
      await this.download(entry, new DownloadView(this.view.el('setup-progress')), {
        onFollow: () => {
          followed = true;
          this.setupNote('Another tab of this app is downloading the model. This tab follows its progress and ' +
            'opens the assistant when it is done.');
        },
        onLead: () => {
          this.setupNote(resumed && !followed ? 'A download was interrupted. It continues from the files already ' +
            'verified.' : '');
        },
      });
    } catch (e) {
      button.disabled = false;
      if (e instanceof DeviceUnsupportedError) {
        await this.useServer(e.reason, false); // too big for this device's engines: the server, where there is one
        return;
      }
      const [state, title] = DOWNLOAD_PROBLEMS[nameOf(e)] ?? ['download-failed', 'The download failed'];
      const again = () => this.install(entry);
      this.view.problem(state, title, messageOf(e), { label: 'Try again', run: again });
      if (state === 'download-interrupted') this.whenServerAnswers(again);
      await this.noteStorageFull(entry, e); // after the problem is on screen: nothing it awaits can hold it back
      return;
    }
    await /** @type {ModelStore} */ (this.store).clearStorageFull();
    this.state = await /** @type {ModelStore} */ (this.store).activate(entry);
    await this.openActive();
  }

  /**
   * A download stopped for want of storage: remember how much it needed and how much was free, so that the next
   * start waits for the space to change instead of filling the disk again.
   * @param {ModelEntry} entry @param {unknown} e
   */
  async noteStorageFull(entry, e) {
    const needBytes = /** @type {any} */ (e)?.needBytes;
    if (nameOf(e) !== 'StorageFullError' || typeof needBytes !== 'number') return;
    const free = await freeSpace(navigator.storage);
    await /** @type {ModelStore} */ (this.store).noteStorageFull({ package_id: entry.package_id, needBytes, free });
  }

  /**
   * One download per origin: where another tab already downloads this version, this one follows its progress.
   * @param {ModelEntry} entry @param {DownloadView} progress
   * @param {{onFollow?: () => void, onLead?: () => void}} [hooks]
   */
  download(entry, progress, hooks = {}) {
    const o = this.options;
    return withDownloadLease(entry.package_id, {
      locks: navigator.locks, ...hooks, onRemoteProgress: (p) => progress.update(p),
    }, (publish) => downloadModel(/** @type {ModelStore} */ (this.store), entry, {
      fetch: globalThis.fetch.bind(globalThis), storage: navigator.storage, concurrency: o.concurrency,
      attempts: o.attempts, baseDelayMs: o.retryBaseMs, maxDelayMs: o.retryMaxMs, partials: this.partials,
      onProgress: (p) => {
        progress.update(p);
        publish(p);
      },
      // "too big for this device" before the big download
      beforeFiles: (manifest) => requireDevice(manifest, this.preference, { context: o.context }),
    }));
  }

  // --- load, confirm, roll back ---------------------------------------------------------------------------------

  /** @param {{deviceOnly?: boolean}} [opts]  deviceOnly: the server was preferred but could not be reached */
  async openActive(opts = {}) {
    const store = /** @type {ModelStore} */ (this.store);
    const state = this.state;
    const entry = /** @type {ModelEntry} */ (state.active);
    this.chat.setEngine(null);
    this.tasks.setEngine(null, null);
    this.view.show('loading');
    const manifest = await store.storedManifest(entry);
    const choice = await chooseDeviceEngine(manifest ?? undefined, this.preference, { context: this.options.context });
    if (!choice.device.length || (choice.order[0] === 'server' && !opts.deviceOnly)) {
      await this.useServer(choice.reason, true, {
        preferred: choice.device.length > 0,
        fallback: choice.device.length ? () => this.openActive({ deviceOnly: true }) : null,
      });
      return;
    }
    const bar = /** @type {HTMLProgressElement} */ (this.view.el('loading-bar'));
    bar.removeAttribute('value');
    if (!(await /** @type {import('./sw_client.js').ServiceWorkerSetup} */ (this.sw).whenControlled(SW_WAIT_MS))) {
      this.offlineNotice ||= 'Offline use is not set up yet (the service worker did not start). The assistant ' +
        'works now; keep it open while online so that it also works offline.';
    }
    /** @type {unknown} */
    let failure = null;
    /** @type {string[]} why the engines tried before the one that loaded could not run here */
    const passedOver = [];
    for (const kind of choice.device) {
      const kindOf = /** @type {'webgpu' | 'cpu'} */ (kind);
      setText(this.view.el('loading-text'), kindOf === 'cpu'
        ? `Loading ${entry.name} into this device's memory (CPU engine)…` : `Loading ${entry.name} into the GPU…`);
      try {
        this.engine = await loadEngine(store.folderUrl(entry), {
          engine: kindOf, context: this.options.context,
          onProgress: (p) => {
            if (p.stage === 'weights' && p.totalBytes) bar.value = (p.loadedBytes ?? 0) / p.totalBytes;
          },
        });
        this.kind = kindOf;
        failure = null;
        break;
      } catch (e) {
        failure = e;
        if (!UNAVAILABLE.has(nameOf(e))) break;
        passedOver.push(messageOf(e));
      }
    }
    if (failure) {
      const e = failure;
      if (!state.confirmed && state.previous) {
        // a new version that does not load here: back to the one that did, and say so
        this.state = await store.rollback();
        const back = /** @type {ModelEntry} */ (this.state.active);
        this.pendingNotice = `Model version ${shortVersion(entry.package_id)} could not be loaded on this device ` +
          `(${messageOf(e)}). The assistant went back to version ${shortVersion(back.package_id)}.`;
        await this.openActive();
        return;
      }
      this.showLoadProblem(e, passedOver);
      return;
    }
    if (!state.confirmed) this.state = await store.confirm(); // loaded once: the previous version can go
    await this.showReady(choice, passedOver);
    await this.offerUpdate();
  }

  /** @param {unknown} e @param {string[]} [passedOver]  why engines tried before could not run here */
  showLoadProblem(e, passedOver = []) {
    const name = nameOf(e);
    if (UNAVAILABLE.has(name)) {
      this.useServer([...passedOver, messageOf(e)].join('; '), true);
    } else if (REINSTALLABLE.has(name) && navigator.onLine) {
      this.view.problem('load-failed', 'The model could not be loaded', `${messageOf(e)}`,
        { label: 'Download the model again', run: () => this.reinstall() });
    } else {
      this.view.problem('load-failed', 'The model could not be loaded', `${messageOf(e)}`,
        { label: 'Try again', run: () => this.openActive() });
    }
  }

  /** Forget the installed version (its files are damaged or unreadable) and start the first run over. */
  async reinstall() {
    const store = /** @type {ModelStore} */ (this.store);
    const { rejected } = this.state;
    this.state = await store.writeState({ active: null, previous: null, confirmed: false, rejected });
    await store.cleanup([]);
    location.reload();
  }

  /**
   * This device cannot run the model: answer from the fallback server that served the app, or, where there is none,
   * say why the device cannot and what to do.
   * @param {string} reason  the probe's, or the engine's load error
   * @param {boolean} downloaded  whether a model is on the device already
   * @param {{server?: import('../engine/index.js').ServerEngine, notice?: string, preferred?: boolean,
   *          fallback?: (() => Promise<void>) | null}} [given]  a server already connected; the notice to show instead
   *   of the device's reason (insecure.js); preferred: the settings ask for the server (the device could answer);
   *   fallback: what to do when the server cannot be reached (the device's own engine)
   */
  async useServer(reason, downloaded, given = {}) {
    let server = given.server;
    try {
      server ??= await connectServer();
    } catch (e) {
      console.info('no fallback server:', messageOf(e));
      if (given.fallback) {
        this.pendingNotice = `The settings prefer the local server, but it cannot be reached (${messageOf(e)}), so ` +
          'this device answers itself.';
        await given.fallback();
        return;
      }
      this.view.problem('device-unsupported', 'This device cannot run the assistant',
        deviceAdvice(reason, downloaded) + serverHint(e));
      return;
    }
    this.engine = server;
    const at = server.info.origin;
    this.doc.body.dataset.engine = 'server';
    this.doc.body.dataset.compute = 'server';
    setText(this.view.el('ready-title'), 'Answering from the server');
    setText(this.view.el('ready-name'), server.info.name);
    setText(this.view.el('ready-where'), `the server at ${at}`);
    setText(this.view.el('foot-text'), `Answers are generated by the server at ${at} and can be wrong. Check them ` +
      'against your procedures.');
    this.view.show('chat', 'ready-server');
    this.view.network(navigator.onLine);
    this.view.notice(given.notice ?? (given.preferred
      ? `Your questions go to the server at ${at}, as the settings ask ("Answers from"). It needs the network to ` +
        'that server.'
      : `This device cannot run the model itself (${reason}), so your questions go to the server at ${at}, which ` +
        'answers them. It needs the network to that server.'));
    this.chat.setEngine(server);
    this.tasks.setEngine(server, { engine: 'server', where: `on the server ${at}`, model: server.info.name, packageId: null });
  }

  /**
   * @param {DeviceChoice} choice  how the engine was chosen (why not WebGPU, where the CPU answers)
   * @param {string[]} passedOver  why engines tried before this one could not load here
   */
  async showReady(choice, passedOver) {
    const entry = /** @type {ModelEntry} */ (this.state.active);
    const kind = /** @type {'webgpu' | 'cpu'} */ (this.kind);
    // the CPU engine's threads: more than one only where the page is cross-origin isolated (SharedArrayBuffer)
    const info = /** @type {{threads?: number | null} | null | undefined} */ (this.engine?.info);
    const threads = kind === 'cpu' ? info?.threads ?? 1 : 1;
    this.doc.body.dataset.engine = 'device';
    this.doc.body.dataset.compute = kind;
    this.doc.body.dataset.threads = String(threads);
    setText(this.view.el('ready-where'), `${ENGINE_LABELS[kind]}${threads > 1 ? `, ${threads} threads` : ''}, offline`);
    setText(this.view.el('foot-text'), `Answers are computed on ${ENGINE_LABELS[kind]} and can be wrong. Check ` +
      'them against your procedures.');
    setText(this.view.el('ready-name'), entry.name);
    setText(this.view.el('ready-version'), shortVersion(entry.package_id));
    setText(this.view.el('ready-size'), formatBytes(entry.size));
    const use = await storageUse(navigator.storage);
    const used = use.usage === null ? 'unknown' : `${formatBytes(use.usage)} on this device`;
    setText(this.view.el('ready-storage'), use.persisted ? used
      : `${used} (the browser may clear it if the device runs out of space)`);
    this.view.show('chat', 'ready');
    const why = kind === 'cpu' ? [choice.notGpu, ...passedOver].filter(Boolean).map(withoutAdvice).join('; ') : '';
    this.view.notice([this.pendingNotice, why && `Answers are computed on this device's CPU: ${why}.`]
      .filter(Boolean).join(' '));
    this.pendingNotice = '';
    this.showOfflineReadiness();
    this.chat.setEngine(this.engine);
    this.tasks.setEngine(this.engine, {
      engine: kind, where: COMPUTED_ON[kind], model: entry.name, packageId: entry.package_id,
    });
    if (kind === 'webgpu' && choice.fallbackAdapter) {
      // WebGPU emulated on the CPU, used only because it is preferred: a timing would hold the engine for minutes
      setText(this.view.el('ready-speed'), 'slow: this GPU is emulated on the CPU');
    } else {
      // in the background: the update offer and the first question need not wait; a figure per thread count
      this.showSpeed(threads > 1 ? `${kind}x${threads}` : kind, entry);
    }
  }

  /**
   * "About N words per second": measured on the first start of this version on this engine, stored after.
   * @param {string} kind  the engine ('webgpu', 'cpu'), and 'xN' for N threads @param {ModelEntry} entry
   */
  async showSpeed(kind, entry) {
    const el = this.view.el('ready-speed');
    const engine = this.engine;
    const known = storedSpeed(localStore(), kind, entry.package_id);
    if (known || this.options.speedCheck === false || !engine) {
      setText(el, known ? speedText(known) : 'not measured');
      return;
    }
    setText(el, 'measuring…');
    try {
      const speed = await measureSpeed(engine, localStore(), kind, entry.package_id);
      if (this.engine === engine) setText(el, speedText(speed));
    } catch (e) {
      console.info('speed check failed:', messageOf(e));
      if (this.engine === engine) setText(el, 'not measured');
    }
  }

  // --- model updates ---------------------------------------------------------------------------------------------

  async offerUpdate() {
    const next = this.index?.current;
    const active = this.state.active;
    const card = this.view.el('model-update');
    if (this.updating) return; // the card already shows that download
    if (!next || !active || next.package_id === active.package_id || this.state.rejected.includes(next.package_id)) {
      card.hidden = true;
      return;
    }
    setText(this.view.el('model-update-text'), `The server offers another model version: ${next.name}, version ` +
      `${shortVersion(next.package_id)}, ${formatBytes(next.size)}. The current version keeps working while it ` +
      'downloads, and stays until the new one has loaded.');
    const button = /** @type {HTMLButtonElement} */ (this.view.el('model-update-download'));
    button.disabled = false;
    button.onclick = () => this.update(next);
    card.hidden = false;
    card.dataset.state = 'offered';
    if (await /** @type {ModelStore} */ (this.store).hasAny(next)) await this.update(next); // resume
  }

  /** @param {ModelEntry} next */
  async update(next) {
    if (this.updating) return;
    this.updating = true;
    const card = this.view.el('model-update');
    const text = this.view.el('model-update-text');
    const button = /** @type {HTMLButtonElement} */ (this.view.el('model-update-download'));
    button.disabled = true;
    card.dataset.state = 'downloading';
    try {
      await this.download(next, new DownloadView(this.view.el('model-update-progress')));
    } catch (e) {
      card.dataset.state = 'failed';
      setText(text, messageOf(e));
      button.disabled = false;
      setText(button, 'Try again');
      if (nameOf(e) === 'DownloadInterruptedError') this.whenServerAnswers(() => this.update(next));
      return;
    } finally {
      this.updating = false;
    }
    card.dataset.state = 'verified';
    setText(text, 'The new version is downloaded and verified. It takes over when the current answer is finished.');
    await this.lock.whenIdle();
    const store = /** @type {ModelStore} */ (this.store);
    this.state = await store.activate(next); // the switch; the old version stays until the new one has loaded
    const old = this.engine;
    this.engine = null;
    this.chat.setEngine(null);
    this.tasks.setEngine(null, null);
    old?.destroy();
    card.hidden = true;
    await this.openActive();
  }
}

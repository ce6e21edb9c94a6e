// download_progress.js: the figures a download shows, kept honest. Files count once verified and stored; bytes count
// while they arrive, and stop counting the moment they are thrown away (a damaged file, a server that ignored a
// range). "done" means every file is stored, never merely that as many bytes arrived as the model has: a download
// that stopped shows what is stored, and says it stopped.

import { formatBytes, formatDuration, formatRate } from './format.js';
import { ProgressMeter } from './progress_meter.js';

/**
 * @typedef {object} DownloadProgress
 * @property {number} bytesDone    of bytesTotal: bytes stored plus bytes received of files still in flight
 * @property {number} bytesStored  bytes of the files verified and stored
 * @property {number} bytesTotal
 * @property {number} filesDone    verified and stored
 * @property {number} filesTotal
 * @property {number} rate         bytes per second, recent
 * @property {number} eta          seconds left (Infinity while unknown)
 * @property {'running' | 'done' | 'stopped'} phase
 */

export class DownloadTally {
  /**
   * @param {number} bytesTotal @param {number} filesTotal
   * @param {number} bytesStored @param {number} filesStored  what the store already held when the download started
   * @param {() => number} [now]
   */
  constructor(bytesTotal, filesTotal, bytesStored, filesStored, now) {
    this.bytesTotal = bytesTotal;
    this.filesTotal = filesTotal;
    this.bytesStored = bytesStored;
    this.filesStored = filesStored;
    this.inFlight = 0; // received bytes of files not yet stored
    this.meter = new ProgressMeter(Math.max(0, bytesTotal - bytesStored), now);
    /** @type {'running' | 'done' | 'stopped'} */
    this.phase = 'running';
  }

  /** @param {number} delta  bytes received (negative: received bytes thrown away) */
  received(delta) {
    this.inFlight += delta;
    this.meter.add(delta);
  }

  /** A file was verified and stored. @param {number} size @param {number} inFlightBytes  its bytes counted so far */
  stored(size, inFlightBytes) {
    this.inFlight -= inFlightBytes;
    this.bytesStored += size;
    this.filesStored++;
    // a file that came whole on the first try counted all its bytes in flight; one resumed counted the same
    this.meter.add(size - inFlightBytes);
  }

  /** The download stopped (failure or abort): bytes of files not stored no longer count as done. */
  stop() {
    this.phase = this.filesStored >= this.filesTotal ? 'done' : 'stopped';
  }

  finish() {
    this.phase = 'done';
  }

  /** @returns {DownloadProgress} */
  progress() {
    const running = this.phase === 'running';
    const bytesDone = Math.min(this.bytesTotal, this.bytesStored + (running ? Math.max(0, this.inFlight) : 0));
    return {
      bytesDone, bytesStored: this.bytesStored, bytesTotal: this.bytesTotal, filesDone: this.filesStored,
      filesTotal: this.filesTotal, rate: running ? this.meter.rate : 0, eta: running ? this.meter.eta : Infinity,
      phase: this.phase === 'running' && this.filesStored >= this.filesTotal ? 'done' : this.phase,
    };
  }
}

/**
 * What the progress block shows for `p`.
 * @param {DownloadProgress} p
 * @returns {{bar: number, bytes: string, files: string, rate: string, eta: string}}
 */
export function progressText(p) {
  const bar = p.bytesTotal ? Math.min(1, p.bytesDone / p.bytesTotal) : 0;
  const files = `${p.filesDone} of ${p.filesTotal}`;
  const bytes = `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`;
  if (p.phase === 'done') return { bar: 1, bytes, files, rate: '', eta: 'done' };
  if (p.phase === 'stopped') {
    return { bar, bytes: `${formatBytes(p.bytesStored)} of ${formatBytes(p.bytesTotal)} stored`, files,
      rate: '', eta: 'stopped' };
  }
  return { bar, bytes, files, rate: formatRate(p.rate), eta: formatDuration(p.eta) };
}

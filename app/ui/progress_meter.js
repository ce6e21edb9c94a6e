// progress_meter.js: download speed and time left from a running byte count. The rate is taken over the last few
// seconds (a sliding window), so it follows a link that speeds up or slows down instead of averaging from the start.

const WINDOW_MS = 5000;

export class ProgressMeter {
  /** @param {number} totalBytes  bytes this download has to fetch @param {() => number} [now] */
  constructor(totalBytes, now = () => performance.now()) {
    this.totalBytes = totalBytes;
    this.doneBytes = 0;
    this.now = now;
    /** @type {{t: number, bytes: number}[]} */
    this.samples = [{ t: now(), bytes: 0 }];
  }

  /** @param {number} delta  bytes received (negative when a failed attempt's bytes are discarded) */
  add(delta) {
    this.doneBytes += delta;
    const t = this.now();
    this.samples.push({ t, bytes: this.doneBytes });
    while (this.samples.length > 2 && this.samples[0].t < t - WINDOW_MS) this.samples.shift();
  }

  /** bytes per second over the window; 0 until there is something to measure */
  get rate() {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    return seconds > 0.2 ? Math.max(0, (last.bytes - first.bytes) / seconds) : 0;
  }

  /** seconds left at the current rate; Infinity when unknown */
  get eta() {
    const rate = this.rate;
    return rate > 0 ? Math.max(0, this.totalBytes - this.doneBytes) / rate : Infinity;
  }
}

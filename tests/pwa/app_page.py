"""The app in one browser context, as the tests drive it: open, wait for a state, ask, look into Cache Storage.

Waiting uses CSS selectors on body[data-state], not wait_for_function: the page runs under a CSP without
'unsafe-eval', which Playwright's polling predicates would need.
"""

from __future__ import annotations

import time
from typing import Any

from dist_server import DistServer

PROBLEM_STATES = ("storage-full", "download-interrupted", "integrity-failed", "server-error", "device-unsupported",
                  "download-failed", "load-failed", "no-model", "offline-first-run", "no-storage", "failed")

_STORE_JS = """async () => {
  const out = {caches: {}, state: null};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out.caches[name] = (await cache.keys()).map((r) => r.url);
  }
  const st = await caches.open('fieldllm-model-state');
  const keys = await st.keys();
  if (keys.length) out.state = await (await st.match(keys[0])).json();
  return out;
}"""

_SHA_OF_CACHED_JS = """async (url) => {
  for (const name of await caches.keys()) {
    const res = await (await caches.open(name)).match(url);
    if (res) {
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await res.arrayBuffer()));
      return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
    }
  }
  return null;
}"""


class AppPage:
    def __init__(self, context: Any, server: DistServer) -> None:
        self.context = context
        self.server = server
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def open(self, path: str = "/") -> AppPage:
        self.page.goto(self.server.url(path))
        return self

    def new_tab(self) -> AppPage:
        """Another page of the same context: same storage and service worker, as a user reopening the app."""
        return AppPage(self.context, self.server)

    @property
    def state(self) -> str:
        return str(self.page.evaluate("document.body.dataset.state"))

    def wait_state(self, *states: str, timeout: float = 90_000) -> str:
        selector = ", ".join(f'body[data-state="{s}"]' for s in states)
        try:
            self.page.wait_for_selector(selector, timeout=timeout, state="attached")
        except Exception as e:
            raise AssertionError(f"waited for {states}, the app is in {self.state!r}: {self.problem_text()!r}; "
                                 f"console: {self.console[-8:]}") from e
        return self.state

    def wait_problem_or(self, *states: str, timeout: float = 90_000) -> str:
        return self.wait_state(*states, *PROBLEM_STATES, timeout=timeout)

    def problem_text(self) -> str:
        return str(self.page.evaluate("document.getElementById('problem-text')?.textContent ?? ''"))

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def ask(self, question: str, timeout: float = 90.0) -> str:
        """Sends a question and waits for the whole streamed answer; returns its text (fails on an error answer)."""
        answers = self.page.locator(".msg.assistant")
        before = answers.count()
        self.page.fill("#chat-input", question)
        self.page.click("#chat-send")
        answer = answers.nth(before)
        answer.wait_for(state="attached", timeout=timeout * 1000)
        deadline = time.monotonic() + timeout
        while answer.get_attribute("data-done") != "true":
            if time.monotonic() > deadline:
                raise AssertionError("the answer did not finish")
            time.sleep(0.02)
        text = str(answer.locator(".text").inner_text())
        if "failed" in (answer.get_attribute("class") or ""):
            raise AssertionError(f"the answer failed: {text}")
        return text

    def store(self) -> dict[str, Any]:
        """{caches: {name: [urls]}, state: the model store's record or None}."""
        return dict(self.page.evaluate(_STORE_JS))

    def cached_sha256(self, url: str) -> str | None:
        return self.page.evaluate(_SHA_OF_CACHED_JS, url)

    def go_offline(self) -> None:
        """The device loses its network: every request fails, and every document from now on reads
        navigator.onLine false, as after a real loss of network.

        Playwright's offline emulation does the first, and tells the documents that are open. It does not reach a
        document that a reload starts in another renderer process (Chromium 150 with Playwright 1.65: a reload that
        the service worker answers with COOP/COEP, or the first one it answers at all), which reads
        navigator.onLine true and so asks the network for what it would not ask offline
        (microsoft/playwright#42174 is the same gap for new pages). So the later documents get the browser's answer
        from an init script; the network stays blocked by the emulation, which is what the tests check.
        """
        self.context.set_offline(True)
        self.context.add_init_script(
            "Object.defineProperty(Navigator.prototype, 'onLine', { get: () => false, configurable: true });")

    def wait_controlled(self) -> None:
        """Until the service worker is active and controls this page (its first install claims the page)."""
        self.page.evaluate("navigator.serviceWorker.ready.then(() => undefined)")
        deadline = time.monotonic() + 30
        while not self.page.evaluate("!!navigator.serviceWorker.controller"):
            if time.monotonic() > deadline:
                raise AssertionError("the service worker never took control of the page")
            time.sleep(0.05)

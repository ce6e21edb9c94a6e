// tabs.js: the tab bar of the ready screen (free chat and the task screens). Each tab is a button that shows its
// panel (index.html: button[role=tab][aria-controls] and section[role=tabpanel]); arrow keys move between tabs.
// body[data-tab] names the open one, for styles and tests.

export class Tabs {
  /** @param {Document} doc @param {HTMLElement} bar  the element with role="tablist" */
  constructor(doc, bar) {
    this.doc = doc;
    this.tabs = /** @type {HTMLButtonElement[]} */ ([...bar.querySelectorAll('[role="tab"]')]);
    for (const [i, tab] of this.tabs.entries()) {
      tab.addEventListener('click', () => this.open(tab.dataset.tab ?? ''));
      tab.addEventListener('keydown', (event) => {
        const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
        if (!step) return;
        event.preventDefault();
        const next = this.tabs[(i + step + this.tabs.length) % this.tabs.length];
        next.focus();
        this.open(next.dataset.tab ?? '');
      });
    }
    this.open(this.tabs.find((t) => t.getAttribute('aria-selected') === 'true')?.dataset.tab ?? this.tabs[0]?.dataset.tab ?? '');
  }

  /** @param {string} name  a tab's data-tab */
  open(name) {
    for (const tab of this.tabs) {
      const on = tab.dataset.tab === name;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      const panel = this.doc.getElementById(tab.getAttribute('aria-controls') ?? '');
      if (panel) panel.hidden = !on;
    }
    this.doc.body.dataset.tab = name;
  }
}

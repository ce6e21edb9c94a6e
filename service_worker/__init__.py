"""The service worker: its source (sw.js) and the Python that fills in its precache manifest at build time."""

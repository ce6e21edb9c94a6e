"""What the benchmarks in scripts/ share: the questions they ask and the machine facts every figure is printed with.

Imported by the scripts beside it (a script's own folder is on sys.path when it runs).
"""

from __future__ import annotations

import platform
from pathlib import Path

# field questions of a typical length (10-15 tokens each): the requests every server benchmark sends
QUESTIONS = [
    "How do I check a centrifugal pump for cavitation?",
    "What are the signs of dehydration in an adult?",
    "Why would a diesel generator lose power under load?",
    "How should a small burn be cleaned and dressed?",
    "What causes a hydraulic system to overheat?",
    "How do I take a patient's pulse at the wrist?",
    "What does a high vibration reading on a motor bearing mean?",
    "How can I tell if a wound is infected?",
    "What are common causes of low oil pressure in an engine?",
    "How do I treat a sprained ankle in the field?",
    "Why does a heat exchanger lose efficiency over time?",
    "What should I do if someone has a nosebleed that will not stop?",
    "How do I safely isolate an electrical panel before maintenance?",
    "What are the symptoms of heat stroke?",
    "How often should seawater strainers be cleaned?",
    "What is the first aid for a suspected broken arm?",
]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared: every figure says how busy it was)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

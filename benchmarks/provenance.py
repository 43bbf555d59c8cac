"""Where a benchmark ran: the commit and the machine, printed with every result."""

from __future__ import annotations

import os
import platform
import subprocess

import jax


def commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        done = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()}, jax {jax.__version__}"

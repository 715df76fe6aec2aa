"""What machine this is: CPU model, SIMD features, CPUs allowed, compiler. Used by `bench` and `info`."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpus_allowed() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def describe() -> dict[str, Any]:
    """A JSON-ready description of this machine and of the versions built for it."""
    from . import registry

    flags = cpu_flags()
    versions = {}
    for v in registry.REGISTRY:
        try:
            mod = registry.module(v.key)
        except Exception:
            continue
        versions[v.key] = {"directory": v.directory, "flags": getattr(mod, "FLAGS", ""),
                           "compiler": getattr(mod, "COMPILER", "")}
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cpus_total": os.cpu_count(),
        "cpus_allowed": cpus_allowed(),
        "simd": {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")},
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }

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


def cpu_ident() -> dict[str, Any]:
    """vendor, family and model numbers from /proc/cpuinfo (a VM may show only 'AMD EPYC' as the model name)."""
    out: dict[str, Any] = {"vendor": "", "family": None, "model": None}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "vendor_id" and not out["vendor"]:
                out["vendor"] = value
            elif key == "cpu family" and out["family"] is None:
                out["family"] = int(value)
            elif key == "model" and out["model"] is None:
                out["model"] = int(value)
            elif key == "processor" and value != "0":
                break
    except (OSError, ValueError):
        pass
    return out


def microarchitecture(ident: dict[str, Any]) -> str:
    """AMD's core generation from family/model (the numbers AMD publishes), '' where unknown."""
    fam, model = ident.get("family"), ident.get("model")
    if ident.get("vendor") != "AuthenticAMD" or fam is None or model is None:
        return ""
    if fam == 0x17:
        return "Zen 2" if model >= 0x30 else "Zen"
    if fam == 0x19:
        return "Zen 4" if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF else "Zen 3"
    if fam == 0x1A:
        return "Zen 5"
    return ""


def slug(machine: dict[str, Any]) -> str:
    """A directory name for this machine's results: CPU model, core generation and best instruction set."""
    name = machine["cpu"].lower()
    for junk in ("(r)", "(tm)", "processor", "cpu", "@"):
        name = name.replace(junk, " ")
    words = [w for w in "".join(c if c.isalnum() else " " for c in name).split() if w][:4]
    uarch = machine.get("microarchitecture", "").lower().replace(" ", "")
    isa = "avx512" if machine["simd"].get("avx512f") else "avx2" if machine["simd"].get("avx2") else "scalar"
    return "-".join(words + ([uarch] if uarch else []) + [isa])


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
    ident = cpu_ident()
    return {
        "cpu": cpu_model(),
        "cpu_ident": ident,
        "microarchitecture": microarchitecture(ident),
        "arch": platform.machine(),
        "cpus_total": os.cpu_count(),
        "cpus_allowed": cpus_allowed(),
        "simd": {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                                          "amx_bf16")},
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }

"""A description of the machine and the code a run measured, read from /proc and git."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dicomweb_server

CODE_ROOT = Path(dicomweb_server.__file__).resolve().parents[1]
"""The checkout whose server the harness starts: the one Python imports ``dicomweb_server`` from."""


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages; other processes share the cores."""
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


def describe_machine(folder: Path) -> dict[str, Any]:
    """Return cores, CPU model, memory, the disk under ``folder``, and software versions."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(_meminfo_kb("MemTotal") * 1024 / 1e9, 1),
        "disk": _disk(folder),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "code": _code_version(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meminfo_kb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _disk(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(folder)
    device, file_system = _mount_of(folder)
    return {
        "folder": str(folder),
        "device": device,
        "file_system": file_system,
        "size_gb": round(usage.total / 1e9),
        "free_gb": round(usage.free / 1e9),
    }


def _mount_of(folder: Path) -> tuple[str, str]:
    """Return the device and file system type of the longest mount point containing ``folder``."""
    best = ("unknown", "unknown", "")
    resolved = str(folder.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount_point, file_system = line.split()[:3]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[2]):
            best = (device, file_system, mount_point)
    return best[0], best[1]


def _code_version() -> dict[str, Any]:
    """Return the commit of the server's checkout and whether tracked files differ from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "uncommitted_changes": None}
    return {"commit": commit, "uncommitted_changes": bool(changed)}


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=CODE_ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()

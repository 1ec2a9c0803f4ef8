"""Where a measurement was taken: device name, driver, library versions (for `bundle.json`),
and how much of the machine's CPU the hypervisor took meanwhile (`steal_share`)."""

from __future__ import annotations

import math
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "numpy")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the measurements (absent ones omitted)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def nvidia_driver_version() -> str | None:
    """Driver version reported by nvidia-smi, or None without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else None


def device_provenance(device: str) -> dict[str, str | None]:
    """{gpu, driver, cuda} for a CUDA device; {gpu: 'cpu: <processor>'} otherwise."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return {
            "gpu": torch.cuda.get_device_name(index),
            "driver": nvidia_driver_version(),
            "cuda": torch.version.cuda,
        }
    return {
        "gpu": f"cpu: {platform.processor() or platform.machine()}",
        "driver": None,
        "cuda": None,
    }


def cpu_ticks() -> list[int]:
    """The machine's CPU time counters (/proc/stat's first line; empty where unreadable)."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return []


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of CPU time between two `cpu_ticks` readings that the hypervisor gave other
    guests (steal, the 8th counter); NaN where unknown. On a shared VM it slows what is timed."""
    if len(before) < 8 or len(after) < 8:
        return math.nan
    delta = [b - a for a, b in zip(before, after)]
    return delta[7] / sum(delta) if sum(delta) > 0 else math.nan

"""Where a measurement was taken: device name, driver, library versions (for `bundle.json`)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata

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

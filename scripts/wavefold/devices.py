"""A free GPU for each concurrent job: an exclusive lease per device, taken before CUDA starts.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but does not say which GPU
each should use. Each job therefore leases one itself: it takes an exclusive ``flock`` on a lock
file per device id and sets ``CUDA_VISIBLE_DEVICES`` to that id. The kernel drops the lock when
the process ends, however it ends, so a killed job never leaves a device taken.

Under SLURM (``SLURM_JOB_ID`` set) the lease steps aside: SLURM has already given the job its
device(s). Without GPUs it leases nothing and the job runs on the CPU.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Folder of the per-device lock files; one per machine, shared by every workflow on it.
DEFAULT_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "wavefold-gpu-leases"


def gpu_ids(environ: dict | None = None) -> list[str]:
    """The device ids this machine offers, read without initialising CUDA.

    ``WAVEFOLD_GPU_IDS`` (comma-separated) names them explicitly (tests simulate GPUs with it);
    else ``CUDA_VISIBLE_DEVICES`` if the user restricted the devices; else the NVIDIA driver's list.
    """
    env = os.environ if environ is None else environ
    for variable in ("WAVEFOLD_GPU_IDS", "CUDA_VISIBLE_DEVICES"):
        if env.get(variable, "").strip():
            return [part.strip() for part in env[variable].split(",") if part.strip()]
    driver = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(driver.iterdir())))] if driver.is_dir() else []


class DeviceLease:
    """``with DeviceLease() as gpu:`` — ``gpu`` is the leased id (also in CUDA_VISIBLE_DEVICES), or None."""

    def __init__(self, lock_dir: Path | None = None, wait_seconds: float = 3600, poll_seconds: float = 0.5):
        self.lock_dir = Path(os.environ.get("WAVEFOLD_LOCK_DIR") or lock_dir or DEFAULT_LOCK_DIR)
        self.wait_seconds, self.poll_seconds = wait_seconds, poll_seconds
        self.handle = None
        self.gpu: str | None = None

    def __enter__(self) -> str | None:
        if os.environ.get("SLURM_JOB_ID"):
            log.info("running under SLURM (job %s): using the devices SLURM assigned", os.environ["SLURM_JOB_ID"])
            return None
        ids = gpu_ids()
        if not ids:
            log.info("no GPU on this machine: running on the CPU")
            return None
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            for gpu in ids:
                handle = open(self.lock_dir / f"gpu-{gpu}.lock", "a+")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                self.handle, self.gpu = handle, gpu
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                log.info("leased GPU %s (lock %s)", gpu, handle.name)
                return gpu
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no free GPU among {ids} after {self.wait_seconds:.0f} s (leases in {self.lock_dir}). "
                    f"Run snakemake with --resources gpu=<number of GPUs> so no more GPU jobs start than there are GPUs."
                )
            time.sleep(self.poll_seconds)

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            log.info("released GPU %s", self.gpu)
            self.handle = self.gpu = None


def pick_device(requested: str = "auto"):
    """The torch device of ``training.device``: auto is CUDA when there is a GPU (the leased one), else the CPU."""
    import torch  # here, not at the top: leasing must happen before CUDA starts

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)

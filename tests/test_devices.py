import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO
from wavefold import devices
from wavefold.devices import DeviceLease


@pytest.fixture
def simulated(monkeypatch, tmp_path):
    monkeypatch.setenv("WAVEFOLD_GPU_IDS", "0,1")
    monkeypatch.setenv("WAVEFOLD_LOCK_DIR", str(tmp_path / "leases"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tmp_path / "leases"


def test_gpu_ids_sources():
    assert devices.gpu_ids({"WAVEFOLD_GPU_IDS": "2, 3"}) == ["2", "3"]
    assert devices.gpu_ids({"CUDA_VISIBLE_DEVICES": "1"}) == ["1"]


def test_two_leases_get_two_devices_and_a_third_waits(simulated):
    with DeviceLease() as first, DeviceLease() as second:
        assert {first, second} == {"0", "1"}
        assert os.environ["CUDA_VISIBLE_DEVICES"] == second
        with pytest.raises(TimeoutError, match="no free GPU"):
            DeviceLease(wait_seconds=0.2, poll_seconds=0.05).__enter__()
    with DeviceLease() as again:
        assert again == "0"


def test_a_killed_job_releases_its_lease(simulated):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from wavefold.devices import DeviceLease\n"
         "with DeviceLease() as gpu, DeviceLease() as other:\n    print(gpu, other, flush=True); time.sleep(60)"],
        env={**os.environ, "PYTHONPATH": str(REPO / "scripts")}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().split() == ["0", "1"]
    with pytest.raises(TimeoutError):
        DeviceLease(wait_seconds=0.2, poll_seconds=0.05).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # Free at once, at the first look (no waiting allowed): the kernel dropped the dead holder's locks.
    with DeviceLease(wait_seconds=0) as gpu, DeviceLease(wait_seconds=0) as other:
        assert {gpu, other} == {"0", "1"}


def test_slurm_and_cpu_machines_lease_nothing(simulated, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with DeviceLease() as gpu:
        assert gpu is None and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("WAVEFOLD_GPU_IDS", "")
    monkeypatch.setattr(devices, "gpu_ids", lambda environ=None: [])
    with DeviceLease() as gpu:
        assert gpu is None

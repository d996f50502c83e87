"""The test cluster's own housekeeping (tests/slurm_cluster.py), on a stand-in for /etc."""

import subprocess
import sys

import slurm_cluster


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_runs_etc_slurm_is_replaced_by_the_original_it_moved_aside(tmp_path, monkeypatch):
    """A run killed before stop() left its slurm.conf (naming daemons long gone: every snakemake start
    then waits on scontrol) and the original moved aside: the next session puts the original back.
    A live run's, or one the tests did not make, is left alone."""
    etc = tmp_path / "slurm"
    monkeypatch.setattr(slurm_cluster, "ETC", etc)
    killed = dead_pid()
    etc.mkdir()
    (etc / "slurm.conf").write_text("SlurmctldHost=localhost\n")
    (etc / slurm_cluster.OWNER).write_text(str(killed))
    original = tmp_path / f"slurm.moved-by-wavefold-tests.{killed}"
    original.mkdir()
    (original / "plugstack.conf").write_text("the machine's own\n")
    assert len(slurm_cluster.restore_after_a_killed_run()) == 2
    assert sorted(p.name for p in etc.iterdir()) == ["plugstack.conf"] and not original.exists()
    assert slurm_cluster.restore_after_a_killed_run() == []  # the machine's own: not touched

    (etc / slurm_cluster.OWNER).write_text(str(slurm_cluster.os.getpid()))  # a live run's
    assert slurm_cluster.restore_after_a_killed_run() == [] and (etc / "plugstack.conf").exists()

"""A real single-node SLURM cluster on localhost, for tests: munged, MariaDB, slurmdbd, slurmctld, slurmd.

Facts it relies on (checked on Debian 12 with slurm-wlm 22.05): Debian's packages do not start their services here,
so the daemons are started by hand, as root, without systemd; the executor plugin polls ``sacct``,
so the cluster keeps job accounting like a real one (slurmdbd on a private MariaDB) — without it
the plugin would wait forever. The node advertises two fake GPUs (gres files that exist but are
empty), so jobs that ask for ``--gpus=1`` are scheduled as on a GPU cluster and then run on the CPU.
It also advertises twice the machine's cores, so that two jobs run at once and their start-up (Python,
the workflow parsed again inside each job) overlaps, and kills a job 2 s after its time limit's
SIGTERM (KillWait), not 30.

``/etc/slurm/`` is machine-wide (srun inside a job reads it: the plugin strips ``SLURM_*`` variables
such as ``SLURM_CONF`` from the job step's environment), so an existing one is moved aside and put
back on stop; only the daemons started here are stopped, by their pids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server"]
BINARIES = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "munged", "mariadbd", "mariadb-install-db"]
CLUSTER = "wavefold"
ETC = Path("/etc/slurm")


class ClusterUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Written into the /etc/slurm a test cluster makes: which test process made it.
OWNER = "made-by-wavefold-tests.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def restore_after_a_killed_run() -> list[str]:
    """Put back what a test run killed before :meth:`LocalSlurm.stop` left: its /etc/slurm, naming
    daemons long gone (every ``scontrol`` then waits ~9 s for them, and with it every snakemake start:
    the SLURM executor plugin asks ``scontrol show config`` when it is imported), and the original
    /etc/slurm it had moved aside. Returns what was done, for the session's header."""
    done = []
    owner = ETC / OWNER
    pid = int(owner.read_text() or 0) if owner.is_file() else None
    if pid is not None and not _alive(pid):
        shutil.rmtree(ETC)
        done.append(f"removed the {ETC} of a killed test run (pid {pid})")
    for moved in sorted(ETC.parent.glob("slurm.moved-by-wavefold-tests.*")):
        if not ETC.exists() and not _alive(int(moved.suffix.lstrip("."))):
            moved.rename(ETC)
            done.append(f"put {moved} back as {ETC}")
    return done


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]


def ensure_installed() -> None:
    """Install Debian's SLURM, munge and MariaDB when missing (needs root and apt-get)."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"missing {missing_binaries()}; install as root: apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env,
                   capture_output=True)  # fmt: skip
    if missing_binaries():
        raise ClusterUnavailable(f"still missing after apt-get: {missing_binaries()}")


class LocalSlurm:
    def __init__(self, root: Path):
        self.root = root
        self.processes: dict[str, subprocess.Popen] = {}
        self.moved_etc: Path | None = None
        self.wrote_etc = False

    # ----------------------------------------------------------------------------------- start
    def start(self, timeout: float = 90) -> "LocalSlurm":
        ensure_installed()
        restore_after_a_killed_run()
        os.environ["PATH"] = f"{os.environ.get('PATH', '')}:/usr/sbin"
        for folder in ("state", "spool", "log", "db", "run", "gres"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        try:
            self._munge()
            self._mariadb()
            self._write_configs()
            self._slurmdbd()
            self._slurmctld_and_slurmd()
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: list[str], **kwargs) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                **kwargs)  # fmt: skip

    def _munge(self) -> None:
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        run = Path("/run/munge")
        run.mkdir(parents=True, exist_ok=True)
        shutil.chown(run, "munge", "munge")
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return  # a munged already runs on this machine: use it
        for folder in (Path("/var/lib/munge"), Path("/var/log/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged", "--foreground"])
        self._wait(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, 15, "munged")

    def _mariadb(self) -> None:
        data = self.root / "db"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal"], check=True, capture_output=True)  # fmt: skip
        self.db_port = _free_port()
        self.db_socket = self.root / "run" / "mariadb.sock"
        self._spawn("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                                 "--bind-address=127.0.0.1", f"--port={self.db_port}", f"--socket={self.db_socket}",
                                 f"--pid-file={self.root / 'run' / 'mariadb.pid'}", "--skip-log-bin"])  # fmt: skip
        # Also for localhost: MariaDB's anonymous ''@'localhost' user would otherwise win over 'slurm'@'%'.
        sql = "CREATE DATABASE slurm_acct_db;" + "".join(
            f"CREATE USER 'slurm'@'{host}' IDENTIFIED BY 'wavefold'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}';"
            for host in ("%", "localhost", "127.0.0.1")
        ) + "FLUSH PRIVILEGES;"

        def ready():
            return subprocess.run(["mariadb", f"--socket={self.db_socket}", "-u", "root", "-e", "SELECT 1"],
                                  capture_output=True).returncode == 0  # fmt: skip

        self._wait(ready, 30, "mariadbd")
        subprocess.run(["mariadb", f"--socket={self.db_socket}", "-u", "root", "-e", sql], check=True, capture_output=True)

    def _write_configs(self) -> None:
        if ETC.exists():
            self.moved_etc = ETC.with_name(f"slurm.moved-by-wavefold-tests.{os.getpid()}")
            ETC.rename(self.moved_etc)
        ETC.mkdir(parents=True)
        self.wrote_etc = True
        (ETC / OWNER).write_text(str(os.getpid()))
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
        fields = dict(part.split("=", 1) for part in node.split() if "=" in part)
        memory = int(int(fields["RealMemory"]) * 0.9)
        self.dbd_port = _free_port()
        r = self.root
        (r / "gres" / "gpu0").touch()
        (r / "gres" / "gpu1").touch()
        (ETC / "gres.conf").write_text(f"NodeName=localhost Name=gpu File={r}/gres/gpu[0-1]\n")
        (ETC / "slurm.conf").write_text(f"""ClusterName={CLUSTER}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
KillWait=2
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.dbd_port}
JobAcctGatherType=jobacct_gather/none
AccountingStoreFlags=job_comment
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={2 * int(fields['CPUs'])} RealMemory={memory} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        dbd = ETC / "slurmdbd.conf"
        dbd.write_text(f"""AuthType=auth/munge
DbdHost=localhost
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={r}/run/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass=wavefold
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)

    def _slurmdbd(self) -> None:
        self._spawn("slurmdbd", ["slurmdbd", "-D"])

        def cluster_added():
            result = subprocess.run(["sacctmgr", "-i", "add", "cluster", CLUSTER], capture_output=True, text=True)
            return result.returncode == 0 or "already exists" in result.stdout + result.stderr

        self._wait(cluster_added, 30, "slurmdbd")

    def _slurmctld_and_slurmd(self) -> None:
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait(lambda: subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP") > 0,
                   30, "slurmctld")  # fmt: skip
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost"])

    def _wait_idle(self, timeout: float) -> None:
        def idle():
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.split()
            return "idle" in out

        self._wait(idle, timeout, "the node to become idle")

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ClusterUnavailable(f"{name} exited ({process.returncode}); see {self.root / 'log'}:\n"
                                             f"{self.logs()}")  # fmt: skip
            time.sleep(0.5)
        raise ClusterUnavailable(f"timed out waiting for {what}; logs in {self.root / 'log'}:\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-1500:])
        return "\n".join(parts)

    # ----------------------------------------------------------------------------------- use
    def jobs(self) -> list[dict]:
        """Every job the accounting knows: id, name, state, comment (rule and wildcards), start and end."""
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-a", "-o", "JobID,JobName,State,Comment,Start,End"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        return [{"id": r[0], "name": r[1], "state": r[2], "comment": r[3], "start": r[4], "end": r[5]} for r in rows]

    def queued(self) -> list[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line.strip()]

    # ----------------------------------------------------------------------------------- stop
    def stop(self) -> None:
        if shutil.which("scancel") and ETC.joinpath("slurm.conf").exists():
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.wrote_etc:
            shutil.rmtree(ETC, ignore_errors=True)
            self.wrote_etc = False
        if self.moved_etc is not None:
            self.moved_etc.rename(ETC)
            self.moved_etc = None

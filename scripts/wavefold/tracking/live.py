"""Live tracking: each job logs to MLflow while it runs, under one parent run per workflow invocation.

The parent run is made by the first job of an invocation that logs anything (under a file lock in
``.snakemake/``, so parallel jobs find the same one) and ended FINISHED or FAILED by the Snakefile's
``onsuccess``/``onerror``. A training job opens its own child run when it starts, logs its settings,
each epoch's metrics as the epoch ends (stamped with the time it ended), its final scores and its
files, and ends FINISHED or FAILED; a job killed outright leaves its run RUNNING with the epochs it
did, and its retry (resumed from the checkpoint) takes up the same run; a job stopped by SIGTERM
(cancelled, or past its SLURM time limit) or Ctrl-C ends KILLED.

Every call to the store is made by a background thread: training never waits for the store, and a
store that fails (a server down, a file not writable) costs one warning, after which the job goes on
untracked; the ``track`` rule logs it after the run.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .invocation import (ENV_COMMIT, ENV_DATASET, ENV_HOST, ENV_INVOCATION, ENV_STARTED, INVOCATION_TAG,
                         OUTPUTS_TAG, Context, mark_invocation, not_live_because, outputs_digest)
from .store import Store, now_ms

log = logging.getLogger(__name__)

__all__ = ["ENV_COMMIT", "ENV_DATASET", "ENV_HOST", "ENV_INVOCATION", "ENV_STARTED", "INVOCATION_TAG",
           "OUTPUTS_TAG", "Context", "Run", "Stopped", "Tracker", "Untracked", "end_invocation",
           "log_to_invocation", "mark_invocation", "nested", "not_live_because", "outputs_digest", "tracked"]  # fmt: skip

#: How long a finishing job waits for the store to take its last entries before it gives up on them
#: (a job being stopped: SLURM sends SIGKILL 30 s after SIGTERM by default).
CLOSE_TIMEOUT_S, STOPPED_TIMEOUT_S = 120, 20


class Stopped(SystemExit):
    """SIGTERM (a cancelled or timed-out job): raised in the main thread, so that the job's run ends KILLED."""


def _raise_stopped(signum, frame):
    raise Stopped(128 + signum)


class Tracker:
    """A background thread that makes every call to the store, in order. A call that fails stops the
    tracking of this process with one warning; the work goes on."""

    def __init__(self, context: Context):
        self.context, self.store, self.failed = context, None, False
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="wavefold-tracking", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[Store], None]) -> None:
        if not self.failed:
            self._queue.put(call)

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            if self.failed:
                continue
            try:
                if self.store is None:
                    self.store = Store(self.context.settings.uri, self.context.settings.experiment)
                call(self.store)
            except Exception as error:  # any failure of the store: warn once, go on untracked
                self.failed = True
                log.warning(
                    "experiment tracking stopped for this job (%s: %s); the job goes on, and the track rule "
                    "logs it after the run. Check tracking.uri (%s) or set tracking.mlflow: false",
                    type(error).__name__, error, self.context.settings.uri)  # fmt: skip

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Wait (at most ``timeout`` seconds) until the store has taken everything submitted."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the tracking store took no more entries within %d s; the job ends without them", timeout)


class Run:
    """One run of the store, logged to through a :class:`Tracker` (its id is known once the tracker
    has made it). ``resume``: a file that keeps the run's id while the job can still be resumed."""

    def __init__(self, tracker: Tracker, name: str, tags: dict, params: dict | None = None,
                 parent: "Run | None" = None, resume: Path | None = None, identity: str = "") -> None:  # fmt: skip
        self.tracker, self.name, self.run_id, self.last_step = tracker, name, None, 0
        self.resume, self.identity = resume, identity
        started = now_ms()
        tracker.submit(lambda store: self._open(store, name, tags, params or {}, parent, started))

    def _open(self, store: Store, name: str, tags: dict, params: dict, parent: "Run | None", started: int) -> None:
        if self.resume and self.resume.exists():
            run_id, _, identity = self.resume.read_text().partition(" ")
            if identity.strip() == self.identity:  # the same job, interrupted: its run goes on
                self.run_id = run_id.strip()
                store.reopen(self.run_id)
                self.last_step = store.last_step(self.run_id, "train_loss")
                return
        parent_id = parent.run_id if parent else self.tracker.context.parent(store)
        self.run_id = store.start(name, {**self.tracker.context.tags(), **tags}, parent_id, started)
        store.log(self.run_id, params=params)
        if self.resume:
            self.resume.parent.mkdir(parents=True, exist_ok=True)
            self.resume.write_text(f"{self.run_id} {self.identity}")

    def epoch(self, row: dict) -> None:
        """A learning-curve row (``epoch`` and its metrics), stamped now, as it ends."""
        now, step = now_ms(), int(row["epoch"])
        values = {k: v for k, v in row.items() if k != "epoch" and v is not None and v == v}

        def log_epoch(store: Store) -> None:
            if step > self.last_step:  # a resumed job replays the epochs its checkpoint holds
                store.log(self.run_id, steps={k: [(step, v)] for k, v in values.items()}, timestamp_ms=now)
                self.last_step = step

        self.tracker.submit(log_epoch)

    def log(self, metrics: dict | None = None, tags: dict | None = None, artifacts=(), outputs=()) -> None:
        """Final metrics, tags, files; ``outputs``: the files whose digest marks the run as holding them."""
        marked = {OUTPUTS_TAG: outputs_digest(self.name, outputs)} if outputs else {}
        artifacts = [Path(p) for p in artifacts] if self.tracker.context.settings.artifacts else []

        def log_final(store: Store) -> None:
            store.log(self.run_id, metrics=metrics, tags={**(tags or {}), **marked})
            for path in artifacts:
                store.artifact(self.run_id, path)

        self.tracker.submit(log_final)

    def end(self, status: str) -> None:
        ended = now_ms()

        def end_run(store: Store) -> None:
            store.end(self.run_id, status, ended)
            if status == "FINISHED" and self.resume:  # the job is done: nothing to resume
                self.resume.unlink(missing_ok=True)
                if not any(self.resume.parent.iterdir()):
                    self.resume.parent.rmdir()

        self.tracker.submit(end_run)


class Untracked:
    """What a job logs to when it does not log live: nothing."""

    def epoch(self, row: dict) -> None: ...

    def log(self, *args, **kwargs) -> None: ...


@contextmanager
def tracked(context: Context, name: str, tags: dict, params: dict | None = None,
            resume: Path | None = None, identity: str = "") -> Iterator[Run | Untracked]:  # fmt: skip
    """A job's run for the block: FINISHED when it ends, FAILED when it raises, KILLED when stopped."""
    why_not = not_live_because(context.settings, context.environ)
    if why_not:
        log.info("tracking: this job is not logged live: %s", why_not)
        yield Untracked()
        return
    tracker = Tracker(context)
    run = Run(tracker, name, tags, params, resume=resume, identity=identity)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if main else None
    timeout = CLOSE_TIMEOUT_S
    try:
        yield run
    except (Stopped, KeyboardInterrupt):
        run.end("KILLED")
        timeout = STOPPED_TIMEOUT_S
        raise
    except BaseException:
        run.end("FAILED")
        raise
    else:
        run.end("FINISHED")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        tracker.close(timeout)


@contextmanager
def nested(run: Run | Untracked, name: str, tags: dict, params: dict | None = None) -> Iterator[Run | Untracked]:
    """A run nested under ``run`` for the block (a tuning study's trial), through the same tracker."""
    if not isinstance(run, Run):
        yield Untracked()
        return
    inner = Run(run.tracker, name, tags, params, parent=run)
    try:
        yield inner
    except BaseException:
        inner.end("FAILED")
        raise
    else:
        inner.end("FINISHED")


def log_to_invocation(context: Context, metrics: dict | None = None, tags: dict | None = None,
                      artifacts=()) -> None:  # fmt: skip
    """A step's numbers of the whole invocation (the round chosen, the local score, the submission
    file) on its parent run, as the step finishes."""
    if not_live_because(context.settings, context.environ) or not context.invocation:
        return
    tracker = Tracker(context)

    def log_all(store: Store) -> None:
        parent = context.parent(store)
        store.log(parent, metrics=metrics, tags=tags)
        for path in artifacts:
            store.artifact(parent, path)

    tracker.submit(log_all)
    tracker.close()


def end_invocation(context: Context, status: str) -> None:
    """End the invocation's parent run (Snakefile onsuccess/onerror), if a job made one."""
    run_id = context.parent_made()
    if run_id:
        tracker = Tracker(context)
        tracker.submit(lambda store: store.end(run_id, status))
        tracker.close()
        context.forget()

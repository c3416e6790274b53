"""What a stage process does before it writes anything: die with whoever started it, take the
pipeline lock, and hold its own stage lock.

* **Parent death.** A stage started by ``dvc repro`` (or an Airflow task running DVC) must not
  outlive it: an orphaned trainer keeps writing the outputs a second run is writing too. The
  kernel sends SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``); a watchdog thread
  covers a shell between DVC and the stage, which PDEATHSIG cannot see through.
* **Pipeline lock.** DVC locks one stage's outputs at a time, so a second ``dvc repro`` would
  rewrite ingest's snapshot while the first run trains. The lock file names the run's owner (the
  ``dvc`` process, found as the first non-shell ancestor of a stage that has ``DVC_STAGE`` set):
  every stage of that run passes, any other run's stage fails at once naming the holder, and a
  holder that is gone from this host is taken over. docs/decisions/011-pipeline-run-lock.md.
* **Stage lock.** An fcntl lock on ``<stage>.lock``, held for the stage's life (the kernel drops
  it when the process dies, however it dies), so a second copy of a stage never runs beside an
  orphan of the first.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines import paths
from pipelines.errors import PipelineError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}
WATCH_SECONDS = 0.5
# Kept open for the life of the process: closing the descriptor would drop the stage lock.
_held: list[int] = []
# What die_with_parent watches: the run's owner and this process's parent at start.
_watched: list[Process] = []


class RunLocked(PipelineError):
    """Another run holds the pipeline, or another copy of this stage is running. Not recorded
    as a failure of this execution's MLflow run: that run may well be the other one's."""


@dataclass(frozen=True)
class Process:
    pid: int
    host: str
    started: str  # wall-clock start, for people
    ticks: int  # /proc start time in clock ticks: tells a live holder from a reused pid

    def alive(self) -> bool:
        return self.host == socket.gethostname() and _start_ticks(self.pid) == self.ticks


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses, so split after it.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _name_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # no /proc (not Linux): take the parent as the owner
        return ""


def describe(pid: int) -> Process:
    ticks = _start_ticks(pid) or 0
    boot = time.time() - time.monotonic()  # close enough to /proc/uptime for a log line
    started = time.strftime(
        "%Y-%m-%dT%H:%M:%S%z", time.localtime(boot + ticks / os.sysconf("SC_CLK_TCK"))
    )
    return Process(pid, socket.gethostname(), started, ticks)


def run_owner() -> Process:
    """The process a pipeline run belongs to: DVC's (past any shell it started us through)
    when DVC runs this stage, else this process itself."""
    if "DVC_STAGE" not in os.environ:
        return describe(os.getpid())
    pid = os.getppid()
    while pid > 1 and _name_of(pid) in SHELLS:
        pid = _parent_of(pid)
    return describe(pid)


def die_with_parent(owner: Process) -> None:
    """SIGTERM this process when its parent or the run's owner dies (stage.py turns SIGTERM
    into a clean, non-zero exit)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        log.debug("prctl is not available; relying on the watchdog")
    _watched[:] = [describe(parent)] + ([owner] if owner.pid != os.getpid() else [])
    if parent_gone():
        os.kill(os.getpid(), signal.SIGTERM)  # died before prctl took effect
    if owner.pid != os.getpid():  # run by DVC, maybe through a shell PDEATHSIG cannot see past
        threading.Thread(target=_watch, name="parent-watchdog", daemon=True).start()


def parent_gone() -> bool:
    """Whether what started this stage has died: the stage is an orphan and must stop at once
    (stage.py then skips recording the failure, which would take MLflow's import time)."""
    return bool(_watched) and not all(p.alive() for p in _watched)


def _watch() -> None:
    while not parent_gone():
        time.sleep(WATCH_SECONDS)
    log.error("the process that started this stage is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def _locks_dir() -> Path:
    paths.RUN_LOCKS.mkdir(parents=True, exist_ok=True)
    return paths.RUN_LOCKS


def take_pipeline_lock(owner: Process) -> None:
    """Pass if ``owner`` holds the pipeline (or takes it now); fail naming another live holder.

    A stage run by hand (no DVC) only checks: it neither takes nor blocks the pipeline."""
    record = _locks_dir() / "pipeline.json"
    with open(_locks_dir() / "pipeline.guard", "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # read-check-write as one step across processes
        holder = _read_holder(record)
        if holder is not None and holder.pid != owner.pid and holder.alive():
            raise RunLocked(_held_message(holder, record))
        if holder is not None and holder.host != socket.gethostname():
            raise RunLocked(_held_message(holder, record) + " on another host")
        if "DVC_STAGE" in os.environ and holder != owner:
            if holder is not None:
                log.warning("taking over the pipeline lock of pid %d (gone)", holder.pid)
            tmp = record.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(owner)))
            os.replace(tmp, record)


def _read_holder(record: Path) -> Process | None:
    try:
        return Process(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _held_message(holder: Process, record: Path) -> str:
    return (
        f"{record}: another pipeline run holds the lock (pid {holder.pid} on {holder.host}, "
        f"started {holder.started}); wait for it to finish, or stop it"
    )


def take_stage_lock(stage: str) -> None:
    """Hold ``<stage>.lock`` until this process ends; fail if another process holds it.

    The workers of a multi-worker training each hold their own (keyed on TF_CONFIG's task)."""
    path = _locks_dir() / f"{stage}{_worker_suffix(os.environ.get('TF_CONFIG'))}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLocked(
            f"{path}: stage {stage} is already running (pid {other}), perhaps orphaned by a "
            "killed run; wait for it or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held.append(fd)


def _worker_suffix(tf_config: str | None) -> str:
    """``-worker1`` for TF_CONFIG's task; nothing without one (pipelines.distribution reports a
    malformed TF_CONFIG, so it is not an error here)."""
    try:
        task = json.loads(tf_config or "{}").get("task", {})
        return f"-{task['type']}{task['index']}"
    except (ValueError, AttributeError, KeyError, TypeError):
        return ""


def clean_temporaries(outputs: list[str]) -> None:
    """Remove what a killed atomic write left in or beside ``outputs`` (``.<name>.*.tmp``,
    ``.<name>.old``): inside a directory output, DVC would commit it with the next run."""
    for out in map(Path, outputs):
        leftovers = list(out.parent.glob(f".{out.name}.*.tmp")) + [
            out.with_name(f".{out.name}.old")
        ]
        if out.is_dir():
            leftovers += [p for p in out.rglob(".*.tmp")]
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
                log.warning("removed %s, left by an interrupted write", path)

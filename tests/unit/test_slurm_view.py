"""The shared Slurm view (slurm/view.py) and the wait that reads it
(batch._Watch), with a fake client: fresh, stale, the refresh lock,
unreachable, jobs newer than the view, hostile files where the view belongs."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from pctest import config_record
from run_job.errors import SlurmUnreachable
from run_job.model import Job, RunContext, SlurmConfig
from run_job.slurm import batch, view
from run_job.slurm.vocabulary import QueueEntry, SlurmJob


class FakeClient:
    """What _Watch and View ask of a SlurmClient, answered from a table."""

    def __init__(self, jobs: dict[str, str] | None = None) -> None:
        self.env = {"SLURM_CONF": "/fake/slurm.conf"}
        self.jobs = dict(jobs or {})  # job id -> state
        self.down = False
        self.calls: list[str] = []
        self.delay = 0.0
        self.next_id = 100

    def queue(self, *, user=None, states=None, fields=()):
        self.calls.append("squeue")
        time.sleep(self.delay)
        if self.down:
            raise SlurmUnreachable("Slurm controller unreachable (squeue exited 1: connection refused)")
        assert states == "all" and tuple(fields) == view.FIELDS
        return [QueueEntry(job_id=j, state=s) for j, s in self.jobs.items()]

    def show_job(self, job_id):
        self.calls.append("scontrol")
        if self.down:
            raise SlurmUnreachable("unreachable")
        state = self.jobs.get(job_id)
        if state is None:
            return None
        return SlurmJob(job_id=job_id, state=state, exit_code=0, exit_signal=0,
                        batch_host="n1" if state != "PENDING" else None)

    def accounting_job(self, job_id):
        self.calls.append("sacct")
        return None

    def submit(self, argv, **kw):
        self.calls.append("sbatch")
        self.next_id += 1
        job_id = str(self.next_id)
        self.jobs[job_id] = "PENDING"
        return job_id

    def cancel(self, job_id, **kw):
        self.calls.append("scancel")
        known = job_id in self.jobs
        self.jobs[job_id] = "CANCELLED"
        return known


def snap_bytes(asked, answered, jobs=(), error="", since=None):
    return view.render(asked=asked, answered=answered, error=error, since=since, jobs=list(jobs))


# -- the file format (pure)


def test_render_parse_find_and_about():
    now = time.monotonic()
    data = snap_bytes(now - 1, now, [("7", "RUNNING", True, True), ("8", "PENDING", True, False),
                                     ("9", "COMPLETED", False, False), ("70", "PENDING", True, False)])
    snap = view.parse(data)
    assert snap is not None and snap.fresh(now) and not snap.fresh(now + view.PERIOD)
    assert (snap.find("7").state, snap.find("7").active, snap.find("7").started) == ("RUNNING", True, True)
    assert snap.find("70").state == "PENDING" and snap.find("0") is None
    assert snap.about("7", submitted=now - 2)[0] == "listed"
    assert snap.about("7", submitted=now - 0.5) == ("nothing", None)  # asked before the submission
    assert snap.about("10", submitted=now - 2) == ("absent", None)
    down = view.parse(snap_bytes(now, now, error="no controller", since=now - 5))
    assert down.about("7", submitted=now - 1) == ("unreachable", None) and down.since == now - 5


@pytest.mark.parametrize("data", [b"", b"garbage\n", view.MAGIC, view.MAGIC + b"[1]\n",
                                  view.MAGIC + b'{"asked": "x"}\n', view.MAGIC + b"{\n",
                                  view.MAGIC + b"\xff\xfe\n"])
def test_parse_refuses_garbage(data):
    assert view.parse(data) is None


def test_views_of_another_boot_or_from_the_future_are_stale():
    now = time.monotonic()
    assert view.parse(view.render(asked=now, answered=now, error="", since=None, jobs=[],
                                  boot="another-boot")) is None
    future = view.parse(snap_bytes(now + 100, now + 100))
    assert future is not None and not future.fresh(now)


def test_view_names_keep_hosts_users_and_clusters_apart():
    a = view.view_name("h", "svc", "/etc/slurm/slurm.conf")
    assert a != view.view_name("h", "svc", "/other/slurm.conf")
    assert a != view.view_name("h2", "svc", "/etc/slurm/slurm.conf")
    assert "/" not in view.view_name("h", "../x/y", "") and not view.view_name(".h", "u", "").startswith(".")


# -- the folder and its files


def make_view(tmp_path: Path) -> view.View:
    shared = view.View(tmp_path / "run", "svc", "/fake/slurm.conf", host="h")
    (tmp_path / "run").mkdir(exist_ok=True)
    assert shared.open(), shared.problem
    return shared


def test_folder_is_made_private_and_a_link_is_refused(tmp_path):
    shared = make_view(tmp_path)
    assert (os.stat(shared.folder).st_mode & 0o777) == 0o700
    other = tmp_path / "elsewhere"
    other.mkdir()
    (tmp_path / "run2").mkdir()
    os.symlink(other, tmp_path / "run2" / view.FOLDER)
    linked = view.View(tmp_path / "run2", "svc", "")
    assert not linked.open() and linked.problem


def test_folder_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder away")
    (tmp_path / "run" / view.FOLDER).mkdir(parents=True)
    os.chown(tmp_path / "run" / view.FOLDER, 65534, 65534)
    shared = view.View(tmp_path / "run", "svc", "")
    assert not shared.open() and "owned by uid 65534" in shared.problem


def test_stale_view_is_refreshed_once_fresh_view_is_read_only(tmp_path):
    shared = make_view(tmp_path)
    client = FakeClient({"5": "RUNNING"})
    assert shared.read() is None
    snap = shared.refresh(client)
    assert client.calls == ["squeue"] and snap.find("5").started
    again = shared.refresh(client)  # fresh under the lock: nobody asks again
    assert client.calls == ["squeue"] and again.answered == snap.answered
    assert shared.read().answered == snap.answered
    assert (os.stat(shared.path).st_mode & 0o777) == 0o600
    # stale: asked again
    assert shared.refresh(client, now=time.monotonic() + view.PERIOD) is not None
    assert client.calls == ["squeue", "squeue"]


def test_busy_refresh_lock_means_someone_else_asks(tmp_path):
    shared = make_view(tmp_path)
    client = FakeClient()
    fd = os.open(os.path.join(shared.folder, shared.lock_name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert shared.refresh(client) is None and client.calls == []
    finally:
        os.close(fd)
    assert shared.refresh(client) is not None and client.calls == ["squeue"]


def test_many_waiters_at_once_ask_once(tmp_path):
    client = FakeClient({"1": "RUNNING"})
    client.delay = 0.2
    views = [make_view(tmp_path) for _ in range(20)]
    got: list = []
    threads = [threading.Thread(target=lambda v=v: got.append(v.refresh(client))) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.calls == ["squeue"]
    assert sum(1 for g in got if g is None) == 19  # the others read the view when it lands


def test_unreachable_is_recorded_with_its_start(tmp_path):
    shared = make_view(tmp_path)
    client = FakeClient({"1": "RUNNING"})
    client.down = True
    first = shared.refresh(client)
    assert first.error and "unreachable" in first.error and first.since == first.asked
    second = shared.refresh(client, now=time.monotonic() + view.PERIOD)
    assert second.error and second.since == first.since  # the failures began then
    assert shared.read().about("1", submitted=first.asked - 1) == ("unreachable", None)
    client.down = False
    third = shared.refresh(client, now=time.monotonic() + 2 * view.PERIOD)
    assert not third.error and third.since is None and third.find("1") is not None


def _hostile(kind: str, path: str, tmp_path: Path) -> None:
    if kind == "symlink":
        target = tmp_path / "target"
        target.write_bytes(snap_bytes(time.monotonic(), time.monotonic(), [("1", "RUNNING", True, True)]))
        os.symlink(target, path)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(view.LIMIT + 1)
        os.chmod(path, 0o600)
    elif kind == "garbage":
        with open(path, "wb") as f:
            f.write(b"\x00\xffnot a view\n" * 100)
        os.chmod(path, 0o600)
    elif kind == "writable":
        with open(path, "wb") as f:
            f.write(snap_bytes(time.monotonic(), time.monotonic()))
        os.chmod(path, 0o666)
    elif kind == "owner":
        with open(path, "wb") as f:
            f.write(snap_bytes(time.monotonic(), time.monotonic()))
        os.chmod(path, 0o600)
        os.chown(path, 65534, 65534)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "huge", "garbage", "writable", "owner"])
def test_hostile_view_reads_as_none_and_is_replaced(tmp_path, kind):
    if kind == "owner" and os.geteuid() != 0:
        pytest.skip("needs root to plant another user's file")
    shared = make_view(tmp_path)
    _hostile(kind, shared.path, tmp_path)
    started = time.monotonic()
    assert shared.read() is None
    assert time.monotonic() - started < 1  # a FIFO never blocks
    client = FakeClient({"2": "PENDING"})
    snap = shared.refresh(client)
    assert client.calls == ["squeue"] and snap.find("2") is not None
    assert shared.read() is not None and os.path.isfile(shared.path) and not os.path.islink(shared.path)
    if kind == "symlink":  # the link was replaced, its target never written
        assert view.parse((tmp_path / "target").read_bytes()).find("1") is not None


@pytest.mark.parametrize("kind", ["symlink", "fifo", "owner"])
def test_hostile_lock_file_is_replaced(tmp_path, kind):
    if kind == "owner" and os.geteuid() != 0:
        pytest.skip("needs root to plant another user's file")
    shared = make_view(tmp_path)
    lock = os.path.join(shared.folder, shared.lock_name)
    if kind == "symlink":
        os.symlink(tmp_path / "victim", lock)
    elif kind == "fifo":
        os.mkfifo(lock, 0o600)
    else:
        Path(lock).touch()
        os.chown(lock, 65534, 65534)
    client = FakeClient()
    assert shared.refresh(client) is not None and client.calls == ["squeue"]
    assert os.path.isfile(lock) and not os.path.islink(lock) and os.stat(lock).st_uid == os.geteuid()
    assert not (tmp_path / "victim").exists()


# -- the wait (batch._Watch) against the fake client


def make_watch(tmp_path: Path, client: FakeClient, *, timeout=None, unreachable=600.0):
    config = config_record(tmp_path / "site", slurm=SlurmConfig(unreachable_timeout=unreachable))
    config.run_directory.mkdir(parents=True, exist_ok=True)
    run_dir = tmp_path / "site" / "run-folder"
    run_dir.mkdir(parents=True, exist_ok=True)
    job = Job(slug="viewjob", path=tmp_path / "viewjob.yaml", sha256="0" * 64, commands=(("true",),),
              command_text=("true",), runner="slurm", timeout=timeout)
    updates: list[dict] = []
    ctx = RunContext(config=config, job=job, run_id="r1", run_dir=run_dir,
                     output_path=run_dir / "output.log", commands=job.commands,
                     command_text=job.command_text, environment={}, working_directory=run_dir,
                     update_status=lambda **kw: updates.append(kw), stop_requested=lambda: None)
    job_id = client.submit([])
    client.calls.clear()
    watch = batch._Watch(ctx, client, job_id, run_dir / "job.status")
    return watch, updates


def test_a_view_older_than_the_submission_concludes_nothing(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client)
    # a fresh view, asked just before the submission: it cannot list the job
    watch.view.refresh(client)
    client.calls.clear()
    with open(watch.view.path, "wb") as f:
        f.write(snap_bytes(watch.submitted - 0.5, time.monotonic(), []))
    assert watch.view.read().about(watch.job_id, watch.submitted) == ("nothing", None)
    assert watch._consult(time.monotonic(), None) is None
    assert client.calls == []  # no squeue (fresh), no scontrol (nothing concluded)


def test_listed_running_notes_the_start_without_asking(tmp_path):
    client = FakeClient()
    watch, updates = make_watch(tmp_path, client)
    client.jobs[watch.job_id] = "RUNNING"
    assert watch._consult(time.monotonic(), None) is None
    assert client.calls == ["squeue"] and watch.started is not None
    assert "slurm_pending_s" in updates[0]
    assert watch._consult(time.monotonic(), None) is None and client.calls == ["squeue"]


def test_absent_from_a_newer_view_asks_about_its_own_job_then_accounting(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client)
    del client.jobs[watch.job_id]  # forgotten by Slurm, no job.status
    watch.started = time.monotonic()  # it ran: the settle waits for job.status (2 s)
    res = watch._consult(time.monotonic(), None)
    assert res is not None and res.outcome == "lost" and "no longer knows" in res.reason
    assert client.calls == ["squeue", "scontrol", "sacct"]


def test_ended_in_the_view_with_job_status_ended(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client)
    client.jobs[watch.job_id] = "COMPLETED"
    watch.status_path.write_text("started_at=a\nended_at=b\nexit_status=0\n")
    res = watch._consult(time.monotonic(), None)
    assert res is not None and res.outcome == "success"
    assert client.calls == ["squeue", "scontrol"]


def test_unreachable_view_counts_time_and_ends_lost(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client, unreachable=5.0)
    client.down = True
    now = time.monotonic()
    assert watch._consult(now, None) is None
    assert watch.unreachable_since is not None and watch.unreachable_since >= watch.submitted
    # ten seconds later the refreshed view still fails: past the timeout, lost
    res = watch._consult(now + view.PERIOD + 1, None)
    assert res is not None and res.outcome == "lost" and "unreachable_timeout" in res.reason
    assert client.calls == ["squeue", "squeue"]  # never read as gone: no scontrol, no sacct


def test_unreachable_then_back_resets(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client, unreachable=5.0)
    client.jobs[watch.job_id] = "RUNNING"
    client.down = True
    now = time.monotonic()
    watch._consult(now, None)
    client.down = False
    assert watch._consult(now + view.PERIOD + 1, None) is None
    assert watch.unreachable_since is None


def test_run_ends_on_job_status_soon_and_asks_little(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client)
    client.jobs[watch.job_id] = "RUNNING"

    def finish():
        time.sleep(0.5)
        tmp = watch.status_path.with_name("job.status.tmp.1")
        tmp.write_text("started_at=a\nended_at=b\nexit_status=3\nfailed_command=1\n")
        os.replace(tmp, watch.status_path)
        client.jobs[watch.job_id] = "FAILED"

    thread = threading.Thread(target=finish)
    thread.start()
    t0 = time.monotonic()
    res = watch.run()
    took = time.monotonic() - t0
    thread.join()
    assert (res.outcome, res.exit_status) == ("failed", 3)
    assert took < 1.5, took  # inotify (or the look every second), not the view's 10 s
    assert client.calls.count("squeue") == 1 and client.calls.count("scontrol") <= 2


def test_timeout_cancels_from_the_start_in_job_status(tmp_path):
    client = FakeClient()
    watch, _ = make_watch(tmp_path, client, timeout=0.5)
    client.jobs[watch.job_id] = "RUNNING"
    watch.status_path.write_text("started_at=a\n")
    t0 = time.monotonic()
    res = watch.run()
    assert res.outcome == "timed_out" and time.monotonic() - t0 < 3
    assert "scancel" in client.calls


def test_no_usable_folder_asks_about_its_own_job(tmp_path, monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(view.View, "open", lambda self: False)
    watch, _ = make_watch(tmp_path, client)
    assert not watch.use_view
    client.jobs[watch.job_id] = "RUNNING"
    assert watch._consult(time.monotonic(), None) is None
    assert client.calls == ["scontrol"] and watch.next_view > time.monotonic() + view.PERIOD - 1

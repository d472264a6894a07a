"""Limits (SPEC §13), the pure part: rlimit values, the shim's argv, the cgroup
v1/v2 table, where a run's cgroup goes, the refusals and the reason's words.

cgroup v2 cannot be exercised for real on the development host (its v2
hierarchy has no controllers): these tables are what proves the v2 path.
"""

from __future__ import annotations

import signal

import pytest

from run_job.model import Limits
from run_job.run import limits
from run_job.run.limits import LimitRefused, Mount, place_cgroups

INF = -1  # resource.RLIM_INFINITY on Linux


# per-process limits ----------------------------------------------------------

@pytest.mark.parametrize("given,expected", [
    (None, ()),
    (Limits(), ()),
    (Limits(memory=1 << 30, tasks=10), ()),
    (Limits(open_files=16), (("nofile", 16, 16),)),
    # whole seconds, rounded up; the hard limit one second later (SIGXCPU first)
    (Limits(cpu_time=1.0), (("cpu", 1, 2),)),
    (Limits(cpu_time=0.2), (("cpu", 1, 2),)),
    (Limits(cpu_time=90.5), (("cpu", 91, 92),)),
    (Limits(file_size=1 << 20), (("fsize", 1 << 20, 1 << 20),)),
    (Limits(cpu_time=3600.0, open_files=4096, file_size=10 << 30),
     (("nofile", 4096, 4096), ("cpu", 3600, 3601), ("fsize", 10 << 30, 10 << 30))),
])
def test_rlimit_settings(given, expected):
    assert limits.rlimit_settings(given) == expected


def test_rlimit_problem_when_run_job_has_a_lower_hard_limit():
    settings = (("nofile", 8192, 8192), ("cpu", 1, 2))
    assert limits.rlimit_problem(settings, {"nofile": INF, "cpu": INF}, INF) is None
    assert limits.rlimit_problem(settings, {"nofile": 8192, "cpu": 2}, INF) is None
    text = limits.rlimit_problem(settings, {"nofile": 4096, "cpu": INF}, INF)
    assert text.startswith("limits.open_files cannot be set") and "4096" in text
    assert "\n" not in text and "lower limits.open_files" in text


def test_shim_settings_and_argv():
    assert limits.shim_settings((), None) == "-"
    assert limits.shim_settings((), 0) == "oom=0"
    assert limits.shim_settings((("nofile", 16, 16), ("cpu", 1, 2)), -17) == \
        "nofile=16:16,cpu=1:2,oom=-17"
    argv = limits.shim_argv("/usr/bin/python3", "/x/limitshim.py", "nofile=16:16", 7,
                            "/bin/echo", ("echo", "a b", "; rm -rf /", "%s"))
    assert argv == ["/usr/bin/python3", "-I", "-S", "/x/limitshim.py", "nofile=16:16", "7",
                    "/bin/echo", "echo", "a b", "; rm -rf /", "%s"]


@pytest.mark.parametrize("data,expected", [
    (b"exec:-:2", ("exec", "-", 2)),
    (b"rlimit:nofile:1", ("rlimit", "nofile", 1)),
    (b"", None), (b"garbage", None), (b"exec:-:x", None), (b"\xff:a:1", None),
])
def test_parse_shim_report(data, expected):
    assert limits.parse_shim_report(data) == expected


# the cgroup v1/v2 table --------------------------------------------------------

ALL = Limits(memory=64 << 20, tasks=32)


@pytest.mark.parametrize("version,controller,expected", [
    (2, "memory", (("memory.max", "67108864", True), ("memory.swap.max", "0", False))),
    (1, "memory", (("memory.limit_in_bytes", "67108864", True),
                   ("memory.memsw.limit_in_bytes", "67108864", False))),
    # run-job itself is one task of the cgroup: not counted against the job
    (2, "pids", (("pids.max", "33", True),)),
    (1, "pids", (("pids.max", "33", True),)),
])
def test_limit_writes_table(version, controller, expected):
    assert limits.limit_writes(version, controller, ALL) == expected
    assert limits.limit_writes(version, controller, Limits()) == ()


def test_counters_and_kill_file_tables():
    assert limits.COUNTERS[(2, "memory")] == ("memory.events", "oom_kill")
    assert limits.COUNTERS[(1, "memory")] == ("memory.oom_control", "oom_kill")
    assert limits.COUNTERS[(2, "pids")] == limits.COUNTERS[(1, "pids")] == ("pids.events", "max")
    assert limits.KILL_FILE == {2: "cgroup.kill", 1: None}


@pytest.mark.parametrize("text,key,expected", [
    ("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", "oom_kill", 2),  # v2 memory.events
    ("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "oom_kill", 1),  # v1 memory.oom_control
    ("max 15467\n", "max", 15467),  # pids.events
    ("oom_kill_disable 0\n", "oom_kill", None),
    ("max lots\n", "max", None),
])
def test_parse_counter(text, key, expected):
    assert limits.parse_counter(text, key) == expected


def test_needed_controllers_and_names():
    assert limits.needed_controllers(None) == ()
    assert limits.needed_controllers(Limits(open_files=3)) == ()
    assert limits.needed_controllers(Limits(memory=1)) == ("memory",)
    assert limits.needed_controllers(ALL) == ("memory", "pids")
    assert limits.limit_keys(["pids", "memory"]) == "limits.memory and limits.tasks"


# finding the hierarchies -----------------------------------------------------------

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_OWN = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/db8b
1:cpu:/
0::/
"""
# A current Debian 12 host: cgroup v2 only, cron's jobs in cron.service.
DEBIAN12_MOUNTINFO = (
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2"
    " rw,nsdelegate,memory_recursiveprot\n")
DEBIAN12_OWN = "0::/system.slice/cron.service\n"
DEBIAN12_CONTROLLERS = {"/sys/fs/cgroup": "cpuset cpu io memory hugetlb pids rdma misc\n"}


def test_parse_mountinfo_hybrid():
    mounts = limits.parse_mountinfo(HYBRID_MOUNTINFO)
    by_point = {m.mount_point: m for m in mounts}
    assert set(by_point) == {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                             "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}
    assert by_point["/sys/fs/cgroup/memory"] == Mount(
        version=1, mount_point="/sys/fs/cgroup/memory", root="/", dev="0:32",
        controllers=frozenset({"memory"}))
    assert by_point["/sys/fs/cgroup/systemd"].controllers == frozenset()
    assert by_point["/sys/fs/cgroup/unified"].version == 2


def test_parse_mountinfo_escapes_and_optional_fields():
    text = (r"50 24 0:40 /sub /srv/cg\040root rw shared:9 master:2 - cgroup2 none rw" "\n"
            "51 24 0:41 / /mnt/x rw - ext4 /dev/sda1 rw\n"
            "broken line\n")
    [mount] = limits.parse_mountinfo(text)
    assert (mount.mount_point, mount.root, mount.dev) == ("/srv/cg root", "/sub", "0:40")


def test_parse_proc_cgroup():
    assert limits.parse_proc_cgroup(HYBRID_OWN) == {
        "name=systemd": "/", "pids": "/", "memory": "/process_api/db8b", "cpu": "/", "": "/"}
    assert limits.parse_proc_cgroup("3:cpu,cpuacct:/a:b\n") == {"cpu": "/a:b", "cpuacct": "/a:b"}
    assert limits.parse_proc_cgroup(DEBIAN12_OWN) == {"": "/system.slice/cron.service"}


def test_place_on_this_kind_of_host_v1_below_run_jobs_own_cgroup():
    mounts = limits.parse_mountinfo(HYBRID_MOUNTINFO)
    places = place_cgroups(("memory", "pids"), mounts, limits.parse_proc_cgroup(HYBRID_OWN), {})
    assert places == [
        limits.Place(version=1, controllers=("memory",), mount_point="/sys/fs/cgroup/memory",
                     dev="0:32", parent=("process_api", "db8b"),
                     cgroup_path="/process_api/db8b/process-control"),
        limits.Place(version=1, controllers=("pids",), mount_point="/sys/fs/cgroup/pids",
                     dev="0:36", parent=(), cgroup_path="/process-control"),
    ]
    assert places[0].folder() == "/sys/fs/cgroup/memory/process_api/db8b/process-control"
    assert places[1].folder() == "/sys/fs/cgroup/pids/process-control"


def test_place_on_debian_12_v2_at_the_root():
    mounts = limits.parse_mountinfo(DEBIAN12_MOUNTINFO)
    own = limits.parse_proc_cgroup(DEBIAN12_OWN)
    [place] = place_cgroups(("memory", "pids"), mounts, own, DEBIAN12_CONTROLLERS)
    assert place == limits.Place(version=2, controllers=("memory", "pids"),
                                 mount_point="/sys/fs/cgroup", dev="0:26", parent=(),
                                 cgroup_path="/process-control")
    assert place.folder() == "/sys/fs/cgroup/process-control"
    [place] = place_cgroups(("pids",), mounts, own, DEBIAN12_CONTROLLERS)
    assert place.controllers == ("pids",)


def test_place_co_mounted_v1_controllers_share_one_place():
    mounts = limits.parse_mountinfo(
        "35 31 0:32 / /cg/mp rw - cgroup cgroup rw,memory,pids\n")
    own = {"memory": "/a", "pids": "/a"}
    [place] = place_cgroups(("memory", "pids"), mounts, own, {})
    assert place.controllers == ("memory", "pids") and place.parent == ("a",)


def test_place_v1_bind_mounted_subtree():
    mounts = limits.parse_mountinfo("35 31 0:32 /lxc/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    [place] = place_cgroups(("memory",), mounts, {"memory": "/lxc/c1/job"}, {})
    assert place.parent == ("job",) and place.cgroup_path == "/lxc/c1/job/process-control"
    with pytest.raises(LimitRefused, match=r"^limits.memory cannot be enforced: run-job's own memory"
                                           r" cgroup \(/elsewhere\) is not inside"):
        place_cgroups(("memory",), mounts, {"memory": "/elsewhere"}, {})


@pytest.mark.parametrize("mountinfo,own,v2,missing,looked", [
    # this host without its v1 pids hierarchy: the empty v2 hierarchy does not offer it
    (HYBRID_MOUNTINFO.replace("39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n", ""),
     HYBRID_OWN, {"/sys/fs/cgroup/unified": ""}, "limits.tasks", "/sys/fs/cgroup/unified/cgroup.controllers"),
    # v2 only, memory not enabled at the root (cgroup_disable=memory)
    (DEBIAN12_MOUNTINFO, DEBIAN12_OWN, {"/sys/fs/cgroup": "cpu io pids\n"}, "limits.memory",
     "/sys/fs/cgroup/cgroup.controllers"),
    # no cgroup file system at all
    ("", "", {}, "limits.memory and limits.tasks", "cgroup v1 hierarchies"),
])
def test_place_refused_when_a_controller_is_missing(mountinfo, own, v2, missing, looked):
    mounts = limits.parse_mountinfo(mountinfo)
    with pytest.raises(LimitRefused) as caught:
        place_cgroups(("memory", "pids"), mounts, limits.parse_proc_cgroup(own), v2)
    text = str(caught.value)
    assert text.startswith(f"{missing} cannot be enforced: no cgroup")
    assert looked in text and "remove" in text and "\n" not in text


def test_refusal_messages_are_one_line_naming_limit_why_and_what_to_do():
    text = limits.not_root_message(("memory", "pids"), "alice")
    assert text.startswith("limits.memory and limits.tasks cannot be enforced")
    assert "'alice'" in text and "root" in text and "remove" in text and "\n" not in text


def test_run_cgroup_name_and_stale_names():
    run_id = "20260102T030405.123456Z-42"
    name = limits.run_cgroup_name("job_1", run_id)
    assert name == "job_1.20260102T030405.123456Z-42"
    other = "job_1.20250102T030405.123456Z-7"
    names = [name, other, "job_10.20250102T030405.123456Z-7", "cgroup.procs", "job_1.notes",
             "memory.limit_in_bytes", "job_1"]
    assert limits.stale_names(names, "job_1", name) == [other]
    # a job named like a control file never takes the control files for runs
    assert limits.stale_names(["cgroup.procs", "cgroup.clone_children"], "cgroup", "x") == []


# the reason's words ------------------------------------------------------------

def test_format_size():
    assert [limits.format_size(n) for n in (64 << 20, 1 << 30, 1536, 1000, 3 << 40)] == \
        ["64M", "1G", "1536 bytes", "1000 bytes", "3T"]


def test_signal_note_names_the_limit_that_sent_the_signal():
    both = Limits(cpu_time=1.0, file_size=1 << 20, memory=64 << 20)
    assert limits.signal_note(signal.SIGXCPU, both) == " (limits.cpu_time: 1s of CPU)"
    assert limits.signal_note(signal.SIGXFSZ, both) == " (limits.file_size: 1M)"
    assert limits.signal_note(signal.SIGKILL, both) == ""  # the memory limit: counter_notes
    assert limits.signal_note(signal.SIGXCPU, Limits(file_size=1)) == ""  # not ours: no claim
    assert limits.signal_note(signal.SIGXCPU, None) == ""


def test_counter_notes():
    assert limits.counter_notes(ALL, 0, 0) == []
    assert limits.counter_notes(ALL, 1, 0) == [
        "limits.memory (64M) reached: the kernel killed 1 process of the run"]
    assert limits.counter_notes(ALL, 2, 1) == [
        "limits.memory (64M) reached: the kernel killed 2 processes of the run",
        "limits.tasks (32) reached: 1 fork refused"]
    assert limits.counter_notes(Limits(memory=1), 0, 5) == []


# the job record ----------------------------------------------------------------

def test_default_limits_apply_to_local_jobs_only(tmp_path):
    import os

    from run_job.config.jobs import check_job_file
    from run_job.config.settings import build_config, default_settings

    settings = default_settings(uid=os.geteuid())
    settings.update(job_directory=str(tmp_path),
                    default_job_config={"limits": {"memory": "1G", "open_files": 64}})
    config = build_config(settings, None, "")
    (tmp_path / "local.yaml").write_text("command: /bin/true\n")
    (tmp_path / "own.yaml").write_text("command: /bin/true\nlimits: {tasks: 5}\n")
    (tmp_path / "batch.yaml").write_text("command: /bin/true\nrunner: slurm\n")
    job, problems = check_job_file(config, tmp_path / "local.yaml")
    assert problems == [] and job.limits == Limits(memory=1 << 30, open_files=64)
    job, problems = check_job_file(config, tmp_path / "own.yaml")  # replaced as a whole
    assert problems == [] and job.limits == Limits(tasks=5)
    job, problems = check_job_file(config, tmp_path / "batch.yaml")
    assert problems == [] and job.limits is None

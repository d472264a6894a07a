"""Validation cache for ``run-job --job``: skip re-validating an unchanged job.

Only ``run-job --job`` and the inspecting commands (``--status``,
``--list-jobs``, ``--history``, ``--kill-job``) use it; ``--validate`` and
cron-generate always validate. An entry holds the validated ``Config`` and
``Job`` (frozen records, as ``marshal`` data) and the key they were validated
under: a SHA-256 over the program version, the stat of the schema files and
of the validating modules, the config file's path, bytes, owner and mode,
the environment the defaults depend on (euid, HOME, XDG_*, PATH, argv[0]),
and the job file's path, bytes, owner and mode (and its folder's): any
change misses. A hit imports neither YAML nor jsonschema nor croniter.
``--status`` keeps one bundle per config (the config and every valid job).

Entries live in ``$XDG_CACHE_HOME/process-control/`` (default
``~/.cache/process-control/``), folder mode 0700, files 0600, and are only
trusted when owned by the current user and not writable by anyone else.
Anything wrong with the cache is a miss, never an error.
"""

from __future__ import annotations

import os
import sys

from run_job.security import CACHE_LIMIT, CONFIG_LIMIT, read_bounded
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, TypeGuard

try:  # the builtin module avoids hashlib's OpenSSL import on the hot path
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover
    from hashlib import sha256 as _sha256

FORMAT = b"run-job-cache-4"
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV_KEYS = ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME",
             "PATH", "PROCESS_CONTROL_CONFIG")


def config_lookup(explicit: str | None) -> str | None:
    """SPEC §2 lookup, for the key only (the config pipeline reports errors)."""
    if explicit:
        return os.path.abspath(explicit)
    env = os.environ.get("PROCESS_CONTROL_CONFIG")
    if env:
        return os.path.abspath(env)
    if os.path.exists("/etc/process-control.yaml"):
        return "/etc/process-control.yaml"
    return None


def cache_dir() -> str | None:
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        home = os.environ.get("HOME")
        if not home:
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "process-control")


def _stat_stamp(path: str, content: bool = True) -> bytes:
    """Mode and owner of ``path`` (what the security checks look at), plus its
    mtime and size when ``content``; ``-`` when it cannot be examined."""
    try:
        st = os.stat(path)
    except OSError:
        return b"-"
    owner = f"{st.st_mode}:{st.st_uid}:{st.st_gid}"
    return (f"{st.st_mtime_ns}:{st.st_size}:{owner}" if content else owner).encode()


_memo: dict[str, bytes] = {}


def program_stamp() -> bytes:
    """Program version plus the stat of the schemas and validating modules."""
    if "stamp" not in _memo:
        _memo["stamp"] = _program_stamp()
    return _memo["stamp"]


def _program_stamp() -> bytes:
    """Version, Python, and path, mtime and size of every module and schema of
    the package as it is on disk: derived from the files themselves, so that
    a module added, changed, moved or removed is a miss (0.1 ms for ~50 files)."""
    from run_job import __version__

    parts = [FORMAT, __version__.encode(), sys.version.encode()]
    for top in (_PKG, os.path.join(os.path.dirname(_PKG), "schemas")):
        parts.extend(sorted(_tree_stamps(top)))
    return b"\0".join(parts)


def _tree_stamps(top: str) -> list[bytes]:
    """``path:mtime:size`` of every .py and .json file below ``top``."""
    found: list[bytes] = []
    folders = [top]
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append(entry.path)
                elif entry.name.endswith((".py", ".json")):
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    found.append(f"{entry.path}:{st.st_mtime_ns}:{st.st_size}".encode())
    return found


def _read_config(path: str | None) -> bytes:
    key = f"config:{path}"
    if key not in _memo:
        _memo[key] = _read(path)
    return _memo[key]


def _read(path: str | None) -> bytes:
    """The bytes of a config or job file for a key; anything that is not a
    regular file of at most ``CONFIG_LIMIT`` bytes keys as unreadable (and
    the config pipeline then says why)."""
    if path is None:
        return b"<embedded>"
    try:
        return read_bounded(path, CONFIG_LIMIT)
    except OSError:
        return b"<unreadable>"


def _read_own(path: str) -> bytes | None:
    """A cache entry or bundle: a regular file (no link) of the current user
    that no one else may write, at most ``CACHE_LIMIT`` bytes; else None (a
    miss: a FIFO or device planted there is never waited on)."""
    try:
        return read_bounded(path, CACHE_LIMIT, nofollow=True, owner=os.geteuid())
    except OSError:
        return None


def make_key(config_path: str | None, config_bytes: bytes, job_path: str, job_bytes: bytes,
             stamp: bytes, env: dict[str, str], euid: int) -> str:
    """The cache key (pure)."""
    h = _sha256()
    for part in (stamp, str(euid).encode(), (config_path or "").encode(), config_bytes,
                 *(f"{k}={env.get(k, '')}".encode() for k in _ENV_KEYS),
                 (sys.argv[0] if sys.argv else "").encode(),
                 job_path.encode(), job_bytes,
                 # the owner/mode checks (as root) of the config and job files
                 _stat_stamp(config_path, content=False) if config_path else b"-",
                 _stat_stamp(job_path, content=False) if job_path else b"-",
                 _stat_stamp(os.path.dirname(job_path), content=False) if job_path else b"-"):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


# Entries are ``marshal`` data (a builtin: pickle's import costs milliseconds)
# of tagged tuples; records are rebuilt through the model's own classes.


def _enc(value: Any) -> Any:
    from pathlib import PurePath
    from types import MappingProxyType

    from run_job.model import Record

    plain = frozenset((type(None), bool, int, float, str, bytes))

    def enc(value: Any) -> Any:
        kind = type(value)
        if kind in plain:
            return value
        if kind is tuple:  # plain items inline: most are strings (argv, tags, environment)
            return ("T", tuple([v if type(v) in plain else enc(v) for v in value]))
        if isinstance(value, Record):
            values = [getattr(value, name) for name in value._fields]
            return ("R", kind.__name__, tuple([v if type(v) in plain else enc(v) for v in values]))
        if isinstance(value, (bool, int, float, str, bytes)):
            return value
        if isinstance(value, PurePath):
            return ("P", str(value))
        if isinstance(value, tuple):
            return ("T", tuple([enc(v) for v in value]))
        if isinstance(value, list):
            return ("L", tuple([enc(v) for v in value]))
        if isinstance(value, MappingProxyType):
            return ("M", tuple([(enc(k), enc(v)) for k, v in value.items()]))
        if isinstance(value, dict):
            return ("D", tuple([(enc(k), enc(v)) for k, v in value.items()]))
        raise TypeError(f"cannot cache a {type(value).__name__}")

    return enc(value)


_encoded_configs: dict[int, tuple[Any, Any]] = {}


def _enc_config(config: Any) -> Any:
    """``_enc(config)``, once per Config object (--status stores 1,000 entries)."""
    hit = _encoded_configs.get(id(config))
    if hit is None or hit[0] is not config:
        hit = (config, _enc(config))
        _encoded_configs[id(config)] = hit
    return hit[1]


def _dec(value: Any, model: Any) -> Any:
    if type(value) is not tuple:
        return value
    tag = value[0]
    if tag == "R":
        cls = getattr(model, value[1])
        if not (isinstance(cls, type) and issubclass(cls, model.Record)):
            raise TypeError(value[1])
        return _record_of(cls, [v if type(v) is not tuple else _dec(v, model) for v in value[2]])
    if tag == "P":
        return model.Path(value[1])
    if tag == "T":
        return tuple([v if type(v) is not tuple else _dec(v, model) for v in value[1]])
    if tag == "L":
        return [_dec(v, model) for v in value[1]]
    if tag == "M":
        return model.MappingProxyType({_dec(k, model): _dec(v, model) for k, v in value[1]})
    if tag == "D":
        return {_dec(k, model): _dec(v, model) for k, v in value[1]}
    raise ValueError(f"unknown tag {tag!r}")


def _record_of(cls: Any, values: list) -> Any:
    """``cls(*values)`` with every field given, without ``Record.__init__``'s
    keyword handling (``--status`` rebuilds 100,000 jobs)."""
    fields = cls._fields
    if len(values) != len(fields):
        raise TypeError(f"{cls.__name__} takes {len(fields)} fields, got {len(values)}")
    record = object.__new__(cls)
    setter = object.__setattr__
    for name, value in zip(fields, values, strict=True):
        setter(record, name, value)
    return record


def encode(key: str, config: Any, job: Any) -> bytes:
    import marshal

    return FORMAT + b"\n" + marshal.dumps((key, os.fspath(job.path), _enc_config(config), _enc(job)))


def decode_raw(data: bytes) -> tuple[str, str, Any, Any]:
    """(key, job path, encoded config, encoded job): nothing rebuilt yet."""
    import marshal

    head, _, body = data.partition(b"\n")
    if head != FORMAT:
        raise ValueError("not a cache entry of this format")
    key, job_path, config, job = marshal.loads(body)
    if not isinstance(key, str) or not isinstance(job_path, str):
        raise ValueError("not a cache entry of this shape")
    return key, job_path, config, job


def decode(data: bytes) -> tuple[str, Any, Any]:
    from run_job import model

    key, _, config, job = decode_raw(data)
    return key, _dec(config, model), _dec(job, model)


def _env() -> dict[str, str]:
    environ = os.environ
    return {k: environ.get(k, "") for k in _ENV_KEYS}


def _entry_path(config_path: str | None, slug: str) -> str | None:
    folder = cache_dir()
    if folder is None:
        return None
    # one entry per invocation shape (argv[0] feeds the runner_path default)
    argv0 = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    h = _sha256(f"{config_path}\0{slug}\0{os.geteuid()}\0{argv0}\0{sys.executable}".encode()
                ).hexdigest()[:40]
    return os.path.join(folder, f"{h}.entry")


def lookup(config_path: str | None, slug: str, need_config: bool = True) -> tuple[Any, Any] | None:
    """(Config, Job) from a valid cache entry, or None (Config None unless ``need_config``)."""
    entry_path = _entry_path(config_path, slug)
    if entry_path is None:
        return None
    data = _read_own(entry_path)
    if data is None:
        return None
    try:
        key, job_path, config, job = decode_raw(data)
    except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss
        return None
    current = make_key(config_path, _read_config(config_path), job_path, _read(job_path),
                       program_stamp(), _env(), os.geteuid())
    if current != key:
        return None
    try:
        from run_job import model

        return (_dec(config, model) if need_config else None), _dec(job, model)
    except Exception:  # noqa: BLE001
        return None


def store(config_path: str | None, slug: str, config: Any, job: Any) -> None:
    """Remember a freshly validated (Config, Job); failures are ignored."""
    entry_path = _entry_path(config_path, slug)
    if entry_path is None:
        return
    job_path = os.fspath(job.path)
    job_bytes = _read(job_path)
    # Only store what was validated: the file must not have changed meanwhile.
    if job.sha256 and _sha256(job_bytes).hexdigest() != job.sha256:
        return
    config_bytes = _read(config_path)
    if config_path and getattr(config, "sha256", "") and \
            _sha256(config_bytes).hexdigest() != config.sha256:
        return
    key = make_key(config_path, config_bytes, job_path, job_bytes, program_stamp(),
                   _env(), os.geteuid())
    try:
        from run_job.atomic import write_atomic

        data = encode(key, config, job)
        os.makedirs(os.path.dirname(entry_path), mode=0o700, exist_ok=True)
        write_atomic(entry_path, data, 0o600, fsync=False)
    except Exception:  # noqa: BLE001 - a cache never fails a run
        pass


def load_validated(explicit_config: str | None, slug: str, *, use_cache: bool = True,
                   config: Any = None) -> tuple[Any, Any]:
    """(Config, Job) for ``run-job --job``: from the cache, else validated and stored.

    ``config``: an already loaded Config (``--status`` loads it once). Raises
    what the config pipeline raises (ConfigError, SecurityError).
    """
    config_path = config_lookup(explicit_config)
    if use_cache and _plain_slug(slug):
        hit = lookup(config_path, slug, need_config=config is None)
        if hit is not None:
            return hit if config is None else (config, hit[1])
    from run_job.config.jobs import load_job

    if config is None:
        from run_job.config.settings import load_config

        config = load_config(explicit_config)
    job = load_job(config, slug)
    if use_cache and _plain_slug(slug):
        store(config_path, slug, config, job)
    return config, job


# ``--status`` reads every job: one bundle file per config holds them all,
# read and written as a stream (memory does not grow with the job directory).
# The file: the ``FORMAT`` line, then records, each a 4-byte little-endian
# length and ``marshal`` data: first ``("", key, encoded Config)``, then
# ``(slug, key, encoded job)`` in the order of the file names, the job's path and SHA-256 left
# out (the key covers both: they are put back from the file just read).


_CONFIG = ""  # the first element of the config's record (no slug is empty)
_RECORD_LIMIT = 4 * 1024 * 1024  # one record; a longer one ends the bundle (a miss from there)
BUNDLE_LIMIT = 1024 * 1024 * 1024  # a bundle larger than this is not read (a miss)


def _bundle_path(config_path: str | None) -> str | None:
    folder = cache_dir()
    if folder is None:
        return None
    argv0 = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    h = _sha256(f"{config_path}\0{os.geteuid()}\0{argv0}\0{sys.executable}".encode()).hexdigest()[:40]
    return os.path.join(folder, f"status-{h}.bundle")


class _BundleReader:
    """The records of a bundle, one at a time. A bundle that is not a regular
    file of the current user that no one else may write, of another format,
    damaged or cut short simply ends (everything after is a miss)."""

    def __init__(self, path: str | None) -> None:
        self.fd = -1
        self.buffer = b""
        self.pos = 0  # where the next record starts in the buffer
        self.offset = 0  # bytes of the file consumed (records whole)
        self.ended = True
        if path is None:
            return
        from run_job.security import open_regular

        try:
            fd, st = open_regular(path, nofollow=True, limit=BUNDLE_LIMIT)
        except OSError:
            return
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            return
        self.fd, self.ended = fd, False
        head = self._take(len(FORMAT) + 1)
        if head != FORMAT + b"\n":
            self.close()

    def _take(self, size: int) -> bytes | None:
        buffer, pos = self.buffer, self.pos
        while len(buffer) - pos < size:
            try:
                data = os.read(self.fd, max(size - (len(buffer) - pos), 1 << 18))
            except OSError:
                data = b""
            if not data:
                self.buffer, self.pos = buffer, pos
                return None
            buffer, pos = buffer[pos:] + data, 0
        self.buffer, self.pos = buffer, pos + size
        self.offset += size
        return buffer[pos:pos + size]

    def next(self) -> tuple | None:
        """The next record (a tuple), or None at the end (for good)."""
        if self.ended:
            return None
        import marshal

        start = self.offset
        size = self._take(4)
        body = self._take(int.from_bytes(size, "little")) if size is not None and \
            int.from_bytes(size, "little") <= _RECORD_LIMIT else None
        try:
            record = marshal.loads(body) if body is not None else None
        except Exception:  # noqa: BLE001 - a damaged bundle ends here
            record = None
        if type(record) is not tuple or len(record) != 3 or not isinstance(record[0], str) \
                or not isinstance(record[1], str):
            self.offset = start
            self.ended = True  # the descriptor stays open: what was read may be copied
            return None
        return record

    def close(self) -> None:
        self.ended = True
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _record(first: str, key: str, encoded: Any) -> bytes:
    import marshal

    data = marshal.dumps((first, key, encoded))
    if len(data) > _RECORD_LIMIT:
        raise TypeError("record too large to cache")
    return len(data).to_bytes(4, "little") + data


class _BundleWriter:
    """A new bundle written beside the old one and renamed over it at the end."""

    def __init__(self, path: str, prefix_from: int = -1, prefix: int = 0) -> None:
        import tempfile

        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = path
        self.broken = False
        fd, self.tmp = tempfile.mkstemp(prefix=".status-", dir=folder)
        self.file = os.fdopen(fd, "wb", buffering=1 << 16)
        try:
            os.fchmod(fd, 0o600)
            if prefix_from >= 0 and prefix:
                self._copy(prefix_from, prefix)
            else:
                self.file.write(FORMAT + b"\n")
        except BaseException:
            self.abandon()
            raise

    def _copy(self, fd: int, size: int) -> None:
        """The first ``size`` bytes of the old bundle (``fd``, the reader's own
        descriptor): its records read and kept so far."""
        offset = 0
        while offset < size:
            data = os.pread(fd, min(size - offset, 1 << 20), offset)
            if not data:
                raise OSError("the bundle shrank")
            self.file.write(data)
            offset += len(data)

    def write(self, data: bytes) -> None:
        if not self.broken:
            try:
                self.file.write(data)
            except OSError:
                self.broken = True

    def commit(self) -> None:
        if self.broken:
            self.abandon()
            return
        try:
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError:
            self.abandon()

    def abandon(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def cached_config(explicit_config: str | None) -> Any:
    """The global Config for --status, --list-jobs, --history, --kill-job: from
    the bundle when the config file, schemas and program are unchanged, else
    loaded (and validated) by the config pipeline and remembered."""
    from run_job import model

    config_path = config_lookup(explicit_config)
    path = _bundle_path(config_path)
    key = make_key(config_path, _read_config(config_path), "", b"", program_stamp(), _env(),
                   os.geteuid())
    reader = _BundleReader(path)
    entry = reader.next()
    reader.close()
    if entry is not None and entry[0] == _CONFIG and entry[1] == key:
        try:
            return _dec(entry[2], model)
        except Exception:  # noqa: BLE001
            pass
    from run_job.config.settings import load_config

    config = load_config(explicit_config)
    if path and (not config_path or _sha256(_read_config(config_path)).hexdigest() == config.sha256):
        # the job records were made under the old config: they would all miss
        try:
            writer = _BundleWriter(path)
        except (OSError, TypeError):
            return config
        try:
            writer.write(_record(_CONFIG, key, _enc_config(config)))
            writer.commit()
        except Exception:  # noqa: BLE001 - a cache never fails a command
            writer.abandon()
    return config


def _job_prefix(config_path: str | None, directory: str) -> Any:
    """The part of every job record's key that is the same for all jobs (pure
    but for the stat of the config file and the job folder)."""
    h = _sha256()
    env = _env()
    for part in (b"jobs", program_stamp(), str(os.geteuid()).encode(), (config_path or "").encode(),
                 _read_config(config_path), *(f"{k}={env.get(k, '')}".encode() for k in _ENV_KEYS),
                 (sys.argv[0] if sys.argv else "").encode(),
                 _stat_stamp(config_path, content=False) if config_path else b"-",
                 _stat_stamp(directory, content=False)):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h


def _job_key(prefix: Any, job_path: str, digest: str, st: os.stat_result) -> str:
    """A job record's key: the prefix, the file's path, the SHA-256 of its
    bytes and its mode and owner (what the checks as root look at)."""
    h = prefix.copy()
    for part in (job_path.encode(), digest.encode(), f"{st.st_mode}:{st.st_uid}:{st.st_gid}".encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


_JOB_PATH, _JOB_SHA = 1, 2  # Job's fields path and sha256, left out of a record


def _enc_job(job: Any) -> tuple:
    from run_job.model import Job

    assert Job._fields[_JOB_PATH] == "path" and Job._fields[_JOB_SHA] == "sha256"
    values = list(_enc(job)[2])
    values[_JOB_PATH] = values[_JOB_SHA] = None
    return tuple(values)


def _dec_job(values: Any, path: Any, digest: str, model: Any) -> Any:
    if type(values) is not tuple or len(values) != len(model.Job._fields):
        raise ValueError("not a job record")
    out = [v if type(v) is not tuple else _dec(v, model) for v in values]
    out[_JOB_PATH], out[_JOB_SHA] = path, digest
    return _record_of(model.Job, out)


def iter_validated(config: Any, explicit_config: str | None, slugs: Any):
    """(slug, Job or the ProcessControlError its file raised) for each of
    ``slugs`` in turn, taken in the order of their file names (``--status``): a job whose record in the
    bundle has the current key is rebuilt from it, any other validated; a new
    bundle is written (streamed) only when something changed. Every job file
    is read once."""
    import hashlib
    from pathlib import Path

    from run_job import model
    from run_job.config.jobs import _JobReader, load_job, check_job_file
    from run_job.errors import ConfigError, ProcessControlError

    config_path = config_lookup(explicit_config)
    path = _bundle_path(config_path)
    directory = os.fspath(config.job_directory)
    folder = directory if directory.endswith("/") else directory + "/"
    prefix = _job_prefix(config_path, directory)
    reader = _BundleReader(path)
    jobs_from = reader.offset  # the bundle up to here is kept (the FORMAT line, the config's record)
    pending = reader.next()
    if pending is not None and pending[0] == _CONFIG:
        jobs_from = reader.offset
        pending = reader.next()
    file_reader = _JobReader(config, config.job_directory)
    writer: _BundleWriter | None = None

    def start() -> _BundleWriter | None:
        """The new bundle, from the records kept so far (None: nowhere to write)."""
        nonlocal path
        if path is None:
            return None
        try:
            return _BundleWriter(path, reader.fd, jobs_from)
        except OSError:
            path = None  # not writable: validate only
            return None
    try:
        for slug in slugs:
            job_path = f"{folder}{slug}.yaml"  # os.path.join, without its cost per job
            raw, st = file_reader.read(job_path)
            if raw is None or st is None or isinstance(raw, str) or file_reader.directory_reason() is not None:
                # a link, a FIFO, an untrusted file or folder...: the general path words it
                try:
                    yield slug, load_job(config, slug)
                except ProcessControlError as err:
                    yield slug, err
                continue
            digest = hashlib.sha256(raw).hexdigest()
            key = _job_key(prefix, job_path, digest, st)
            while pending is not None and pending[0] + ".yaml" < slug + ".yaml":  # records of files gone
                writer = writer or start()
                pending = reader.next()
            job = None
            if pending is not None and pending[0] == slug:
                if pending[1] == key:
                    try:
                        job = _dec_job(pending[2], Path(job_path), digest, model)
                    except Exception:  # noqa: BLE001 - a damaged record is a miss
                        job = None
                if job is None:  # the record is dropped: the bundle changes from here
                    writer = writer or start()
                elif writer is None:
                    jobs_from = reader.offset  # everything up to this record is kept as it is
                pending = reader.next()
            if job is not None:
                if writer is not None:
                    writer.write(_record(slug, key, _enc_job(job)))
                yield slug, job
                continue
            job, problems = check_job_file(config, Path(job_path), raw=raw)
            if problems or job is None:  # never stored: validated (and worded) each time
                yield slug, ConfigError(f"{job_path}: invalid job file", tuple(problems))
                continue
            writer = writer or start()
            if writer is not None:
                try:
                    writer.write(_record(slug, key, _enc_job(job)))
                except TypeError:
                    pass  # not cacheable: validated again next time
            yield slug, job
        if pending is not None:  # records of files gone
            writer = writer or start()
        if writer is not None:
            writer.commit()
            writer = None
    finally:
        reader.close()
        if writer is not None:
            writer.abandon()


def validated_jobs(config: Any, explicit_config: str | None, slugs: list[str]) -> dict[str, Any]:
    """slug -> Job, or the ProcessControlError that its file raised (all at once)."""
    return dict(iter_validated(config, explicit_config, sorted(slugs, key=lambda slug: slug + ".yaml")))


def _shaped(entry: Any, length: int) -> TypeGuard[tuple]:
    """A bundle entry of the expected shape (a damaged one is a miss) (pure)."""
    return type(entry) is tuple and len(entry) == length


def _plain_slug(slug: str) -> bool:
    """SPEC §3 slug shape, without ``re`` (pure)."""
    return (0 < len(slug) <= 200 and slug.isascii() and slug[0].isalnum()  # 200: jobs.SLUG_MAX
            and all(c.isalnum() or c in "_-" for c in slug))


def encode_records(records: tuple) -> Any:
    """Records (``Config``, ``Job``, ...) as ``marshal``-able data (the
    hand-off of a run's wait, ``run/handoff.py``); ``decode_records`` undoes it."""
    return _enc(records)


def decode_records(data: Any) -> Any:
    from run_job import model

    return _dec(data, model)

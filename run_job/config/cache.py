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

    def enc(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return value
        if isinstance(value, Record):
            return ("R", type(value).__name__, tuple(enc(v) for v in value._values()))
        if isinstance(value, PurePath):
            return ("P", str(value))
        if isinstance(value, tuple):
            return ("T", tuple(enc(v) for v in value))
        if isinstance(value, list):
            return ("L", tuple(enc(v) for v in value))
        if isinstance(value, MappingProxyType):
            return ("M", tuple((enc(k), enc(v)) for k, v in value.items()))
        if isinstance(value, dict):
            return ("D", tuple((enc(k), enc(v)) for k, v in value.items()))
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
        return cls(*(_dec(v, model) for v in value[2]))
    if tag == "P":
        return model.Path(value[1])
    if tag == "T":
        return tuple(_dec(v, model) for v in value[1])
    if tag == "L":
        return [_dec(v, model) for v in value[1]]
    if tag == "M":
        return model.MappingProxyType({_dec(k, model): _dec(v, model) for k, v in value[1]})
    if tag == "D":
        return {_dec(k, model): _dec(v, model) for k, v in value[1]}
    raise ValueError(f"unknown tag {tag!r}")


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


# ``--status`` reads every job: one bundle file per config holds them all
# (slug -> key, job path, encoded job), read and written once per status.


def _bundle_path(config_path: str | None) -> str | None:
    folder = cache_dir()
    if folder is None:
        return None
    argv0 = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    h = _sha256(f"{config_path}\0{os.geteuid()}\0{argv0}\0{sys.executable}".encode()).hexdigest()[:40]
    return os.path.join(folder, f"status-{h}.bundle")


def _load_bundle(path: str) -> dict:
    data = _read_own(path)
    if data is None:
        return {}
    try:
        import marshal

        head, _, body = data.partition(b"\n")
        bundle = marshal.loads(body) if head == FORMAT else {}
        return bundle if isinstance(bundle, dict) else {}
    except Exception:  # noqa: BLE001 - a damaged bundle is a miss
        return {}


_bundles: dict[str, dict] = {}


def _bundle(config_path: str | None) -> tuple[str | None, dict]:
    path = _bundle_path(config_path)
    if path is None:
        return None, {}
    if path not in _bundles:
        _bundles[path] = _load_bundle(path)
    return path, _bundles[path]


def _write_bundle(path: str, bundle: dict) -> None:
    try:
        import marshal

        from run_job.atomic import write_atomic

        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_atomic(path, FORMAT + b"\n" + marshal.dumps(bundle), 0o600, fsync=False)
        _bundles[path] = bundle
    except Exception:  # noqa: BLE001 - a cache never fails a command
        pass


def cached_config(explicit_config: str | None) -> Any:
    """The global Config for --status, --list-jobs, --history, --kill-job: from
    the bundle when the config file, schemas and program are unchanged, else
    loaded (and validated) by the config pipeline and remembered."""
    from run_job import model

    config_path = config_lookup(explicit_config)
    path, bundle = _bundle(config_path)
    key = make_key(config_path, _read_config(config_path), "", b"", program_stamp(), _env(),
                   os.geteuid())
    entry = bundle.get("config")
    if _shaped(entry, 2) and entry[0] == key:
        try:
            return _dec(entry[1], model)
        except Exception:  # noqa: BLE001
            pass
    from run_job.config.settings import load_config

    config = load_config(explicit_config)
    if path and (not config_path or _sha256(_read_config(config_path)).hexdigest() == config.sha256):
        try:
            _write_bundle(path, {**bundle, "config": (key, _enc_config(config))})
        except TypeError:
            pass
    return config


def validated_jobs(config: Any, explicit_config: str | None, slugs: list[str]) -> dict[str, Any]:
    """slug -> Job, or the ProcessControlError that its file raised (``--status``)."""
    from run_job import model
    from run_job.errors import ProcessControlError
    from run_job.config.jobs import load_job

    config_path = config_lookup(explicit_config)
    path, whole = _bundle(config_path)
    bundle = whole.get("jobs")
    if not isinstance(bundle, dict):
        bundle = {}
    stamp, config_bytes, env, euid = program_stamp(), _read_config(config_path), _env(), os.geteuid()
    directory = os.fspath(config.job_directory)
    out: dict[str, Any] = {}
    fresh: dict[str, Any] = {}
    for slug in slugs:
        job_path = os.path.join(directory, f"{slug}.yaml")
        job_bytes = _read(job_path)
        key = make_key(config_path, config_bytes, job_path, job_bytes, stamp, env, euid)
        entry = bundle.get(slug)
        if _shaped(entry, 3) and entry[0] == key and entry[1] == job_path:
            try:
                out[slug] = _dec(entry[2], model)
                fresh[slug] = entry
                continue
            except Exception:  # noqa: BLE001
                pass
        try:
            job = load_job(config, slug)
        except ProcessControlError as err:
            out[slug] = err
            continue
        out[slug] = job
        if _sha256(job_bytes).hexdigest() == job.sha256 and os.fspath(job.path) == job_path:
            try:
                fresh[slug] = (key, job_path, _enc(job))
            except TypeError:
                pass
    if path and fresh != bundle:
        _write_bundle(path, {**whole, "jobs": fresh})
    return out


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

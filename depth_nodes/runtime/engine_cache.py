"""The TensorRT engine cache: build an engine once per model, TensorRT version, GPU, precision
and builder settings.

A serialized TensorRT engine only runs on the TensorRT version and GPU model that built it, at
the precision it was built for. Building takes seconds to minutes, so engines are cached on
disk and reused across starts; nothing here imports TensorRT (the builder and the
deserialiser are passed in), so the logic is tested on machines without a GPU.

Cache key (:class:`EngineKey`): SHA-256 of the ONNX file (and of ``<model>.onnx.data`` when
the weights are stored externally) + TensorRT version + GPU name + compute capability + SM
count (Jetson Orin modules share name and capability, not engines) + precision + builder
settings (TF32, workspace limit: changing them must rebuild) (+ SHA-256 of the INT8
calibration table for int8).

One cache entry is three files in the cache directory::

    <model stem>.<precision>.<key digest, 16 hex>.engine   the serialized engine
    <model stem>.<precision>.<key digest, 16 hex>.json     sidecar: the key, the engine's
                                                           SHA-256 and size, build facts
    <model stem>.<precision>.<key digest, 16 hex>.lock     flock()ed while looking up/building

Concurrency and crashes: the lookup-or-build runs under an exclusive ``fcntl.flock`` on the
entry's lock file, so two nodes starting together build once (the second waits, then hits).
Files are written to a temporary name in the same directory, fsync()ed and os.replace()d, the
engine before its sidecar; an entry counts as complete only when the sidecar exists and the
engine's SHA-256 matches it, so a crash at any point leaves no file that looks complete.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, TypeVar

LOGGER = logging.getLogger('depth_nodes.engine_cache')

ENGINE_SUFFIX = '.engine'
SIDECAR_SUFFIX = '.json'
LOCK_SUFFIX = '.lock'
SIDECAR_SCHEMA = 1

# What load_or_build found (CachedEngine.status):
# HIT       a complete entry for this exact key; deserialised and used
# MISS      nothing cached for this model and precision: built
# MISMATCH  an entry for this model, GPU and TensorRT version built for another key (model
#           file or builder settings changed): rebuilt, the stale entry removed. Entries of
#           other TensorRT versions or GPUs are left alone: two installs sharing a cache
#           directory must not evict each other's engines at every start.
# CORRUPT   an entry for this key that is incomplete, altered or does not deserialise:
#           rebuilt over it
# FORCED    force_engine_update: rebuilt although the cache may have held it
HIT, MISS, MISMATCH, CORRUPT, FORCED = 'hit', 'miss', 'mismatch', 'corrupt', 'forced'
STATUSES = (HIT, MISS, MISMATCH, CORRUPT, FORCED)

T = TypeVar('T')


class EngineCacheError(RuntimeError):
    """The cache cannot be used (unwritable directory, an engine that fails right after build)."""


def default_cache_dir() -> Path:
    """``$ROS_HOME/depth_nodes/engines``, or ``~/.ros/depth_nodes/engines`` (ROS' default home)."""
    ros_home = os.environ.get('ROS_HOME')
    base = Path(ros_home).expanduser() if ros_home else Path.home() / '.ros'
    return base / 'depth_nodes' / 'engines'


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_model_sha256(onnx_path: Path) -> str:
    """SHA-256 of the ONNX file, extended with its external-weights file when there is one.

    torch.onnx writes weights over 2 GB to ``<model>.onnx.data``; a change there must
    invalidate the engine as much as a change in the graph.
    """
    onnx_path = Path(onnx_path)
    digest = file_sha256(onnx_path)
    external = onnx_path.with_name(onnx_path.name + '.data')
    if external.is_file():
        digest = hashlib.sha256((digest + file_sha256(external)).encode()).hexdigest()
    return digest


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on; equal keys mean the engine can be reused."""
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str          # 'major.minor', e.g. '8.7' (Jetson Orin), '8.9' (RTX 4090)
    precision: str                   # fp32 | fp16 | int8
    calibration_sha256: str = ''     # int8 only: the calibration table the engine was built from
    sm_count: str = ''               # streaming multiprocessors (Orin modules differ here only)
    builder_settings: str = ''       # e.g. 'tf32=off,workspace_mb=1024'

    def digest(self) -> str:
        """SHA-256 of the key's canonical JSON (names the cache files)."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(',', ':'))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, other: 'EngineKey') -> list[str]:
        """'field: theirs -> ours' for every field that differs (for the rebuild log)."""
        out = []
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                if f.name.endswith('sha256'):
                    mine, theirs = mine[:12] or '-', theirs[:12] or '-'
                out.append(f'{f.name}: {theirs} -> {mine}')
        return out

    @classmethod
    def from_mapping(cls, values) -> 'EngineKey':
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: str(v) for k, v in values.items() if k in names})


def make_engine_key(onnx_path: Path, *, tensorrt_version: str, gpu_name: str,
                    compute_capability: tuple[int, int] | str, precision: str,
                    calibration_cache: Path | None = None, sm_count: int | str = '',
                    builder_settings: str = '') -> EngineKey:
    """The key of an engine for ``onnx_path`` on this TensorRT and GPU."""
    if not isinstance(compute_capability, str):
        compute_capability = '.'.join(str(int(v)) for v in compute_capability)
    calibration = ''
    if precision == 'int8' and calibration_cache is not None:
        calibration = file_sha256(Path(calibration_cache))
    return EngineKey(onnx_model_sha256(onnx_path), str(tensorrt_version), str(gpu_name),
                     compute_capability, precision, calibration, str(sm_count),
                     str(builder_settings))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    A temporary file in the same directory (same filesystem, so os.replace is atomic), fsync()ed
    before the rename and the directory fsync()ed after it, so a power cut cannot leave a
    renamed file with missing blocks. On any error the temporary file is removed.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (e.g. network mounts) refuse fsync on directories
        pass
    finally:
        os.close(fd)


@dataclass
class CacheLookup:
    """What the cache holds for a key, before anything is deserialised."""
    status: str                  # HIT (files complete and intact), MISS, MISMATCH or CORRUPT
    engine_path: Path
    reason: str = ''             # why not a hit, for the log
    data: bytes | None = None    # the engine bytes on HIT
    stale: tuple[Path, ...] = ()  # sidecars of entries this key replaces (MISMATCH)


@dataclass
class CachedEngine(Generic[T]):
    """The result of load_or_build: the deserialised engine and how it was obtained."""
    engine: T
    status: str
    engine_path: Path
    reason: str
    build_s: float | None        # seconds spent building (None on a hit)
    load_s: float                # seconds spent deserialising

    def describe(self) -> str:
        if self.status == HIT:
            return f'engine from cache ({self.engine_path.name}, loaded in {self.load_s:.2f} s)'
        return (f'engine built in {self.build_s:.1f} s ({self.status}: {self.reason}), '
                f'cached as {self.engine_path.name}')


def safe_file_name(text: str) -> str:
    """``text`` with anything but letters, digits, _ and - replaced, for use in file names."""
    return re.sub(r'[^A-Za-z0-9_-]+', '_', text).strip('_') or 'model'


class EngineCache:
    """Engines on disk, keyed by :class:`EngineKey`; see the module docstring for the layout."""

    def __init__(self, directory: Path | str | None = None,
                 log: Callable[[str], None] | None = None):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self._log = log or LOGGER.warning

    # -- naming ------------------------------------------------------------------------------
    def entry_stem(self, onnx_path: Path, key: EngineKey) -> str:
        return f'{safe_file_name(Path(onnx_path).stem)}.{key.precision}.{key.digest()[:16]}'

    def engine_path(self, onnx_path: Path, key: EngineKey) -> Path:
        return self.directory / (self.entry_stem(onnx_path, key) + ENGINE_SUFFIX)

    @staticmethod
    def sidecar_path(engine_path: Path) -> Path:
        return engine_path.with_suffix(SIDECAR_SUFFIX)

    # -- lookup ------------------------------------------------------------------------------
    def lookup(self, onnx_path: Path, key: EngineKey) -> CacheLookup:
        """Classify the cache's content for ``key`` (no deserialisation, no lock)."""
        engine_path = self.engine_path(onnx_path, key)
        sidecar_path = self.sidecar_path(engine_path)
        if engine_path.exists() or sidecar_path.exists():
            data, reason = self._read_entry(engine_path, sidecar_path, key)
            if reason:
                return CacheLookup(CORRUPT, engine_path, reason)
            return CacheLookup(HIT, engine_path, data=data)
        stale = self._stale_entries(onnx_path, key)
        if stale:
            other = EngineKey.from_mapping(json.loads(stale[0].read_text())['key'])
            changes = '; '.join(key.differences(other))
            return CacheLookup(MISMATCH, engine_path, f'cached engine was built for another '
                               f'key ({changes})', stale=tuple(stale))
        return CacheLookup(MISS, engine_path, 'no engine cached for this model, TensorRT, '
                                              'GPU, precision and builder settings')

    def _read_entry(self, engine_path: Path, sidecar_path: Path, key: EngineKey
                    ) -> tuple[bytes | None, str]:
        """(engine bytes, '') for a complete and intact entry, else (None, what is wrong)."""
        try:
            sidecar = json.loads(sidecar_path.read_text())
            recorded_key = EngineKey.from_mapping(sidecar['key'])
            recorded_sha, recorded_size = sidecar['engine_sha256'], int(sidecar['engine_bytes'])
        except FileNotFoundError:
            return None, (f'{sidecar_path.name} is missing (a write was interrupted before '
                          'the entry completed)')
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f'{sidecar_path.name} is unreadable ({type(exc).__name__}: {exc})'
        if recorded_key != key:
            return None, (f'{sidecar_path.name} describes another key '
                          f'({"; ".join(key.differences(recorded_key))})')
        try:
            data = engine_path.read_bytes()
        except FileNotFoundError:
            return None, f'{engine_path.name} is missing but its sidecar exists'
        if len(data) != recorded_size:
            return None, (f'{engine_path.name} has {len(data)} bytes, its sidecar says '
                          f'{recorded_size} (truncated?)')
        if hashlib.sha256(data).hexdigest() != recorded_sha:
            return None, f'{engine_path.name} does not match the SHA-256 in its sidecar'
        return data, ''

    def _stale_entries(self, onnx_path: Path, key: EngineKey) -> list[Path]:
        """Sidecars of other-key entries for the same model file, precision, GPU and TensorRT.

        Entries for other GPUs or TensorRT versions are left alone: a cache directory shared
        by two machines (a network home) or two TensorRT installs must not make them rebuild
        each other's engines at every start.
        """
        if not self.directory.is_dir():
            return []
        source = str(Path(onnx_path).resolve())
        found = []
        pattern = f'{safe_file_name(Path(onnx_path).stem)}.{key.precision}.*{SIDECAR_SUFFIX}'
        for sidecar_path in sorted(self.directory.glob(pattern)):
            try:
                sidecar = json.loads(sidecar_path.read_text())
                other = EngineKey.from_mapping(sidecar['key'])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (sidecar.get('onnx_path') == source and other != key
                    and other.tensorrt_version == key.tensorrt_version
                    and other.gpu_name == key.gpu_name
                    and other.compute_capability == key.compute_capability
                    and other.sm_count == key.sm_count):
                found.append(sidecar_path)
        return found

    # -- store -------------------------------------------------------------------------------
    def store(self, onnx_path: Path, key: EngineKey, engine_bytes: bytes,
              details: dict | None = None) -> Path:
        """Add an engine built elsewhere (the build_engine CLI) under the entry's lock."""
        self.make_directory()
        engine_path = self.engine_path(onnx_path, key)
        with FileLock(engine_path.with_suffix(LOCK_SUFFIX)):
            return self._write_entry(onnx_path, key, engine_bytes, details)

    def _write_entry(self, onnx_path: Path, key: EngineKey, engine_bytes: bytes,
                     details: dict | None) -> Path:
        """Write an entry atomically: the engine first, then the sidecar that completes it."""
        engine_bytes = bytes(engine_bytes)
        if not engine_bytes:
            raise EngineCacheError('refusing to cache an empty engine')
        engine_path = self.engine_path(onnx_path, key)
        sidecar = {
            'schema': SIDECAR_SCHEMA,
            'key': dataclasses.asdict(key),
            'key_digest': key.digest(),
            'onnx_path': str(Path(onnx_path).resolve()),
            'engine_sha256': hashlib.sha256(engine_bytes).hexdigest(),
            'engine_bytes': len(engine_bytes),
            'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            **(details or {}),
        }
        # Remove a sidecar from an earlier (corrupt) entry first: between the two writes below
        # the entry must read as incomplete, never as the old sidecar over the new engine.
        self.sidecar_path(engine_path).unlink(missing_ok=True)
        atomic_write_bytes(engine_path, engine_bytes)
        atomic_write_bytes(self.sidecar_path(engine_path),
                           (json.dumps(sidecar, indent=2, sort_keys=True) + '\n').encode())
        return engine_path

    def make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineCacheError(f"cannot create the engine cache directory '{self.directory}'"
                                   f' ({exc.strerror}); set engine_cache_dir to a writable '
                                   'directory') from None
        if not os.access(self.directory, os.W_OK):
            raise EngineCacheError(f"engine cache directory '{self.directory}' is not writable; "
                                   'set engine_cache_dir to a writable directory')

    def remove_entry(self, sidecar_path: Path) -> None:
        """Delete an entry: the sidecar first, so a crash midway leaves it incomplete."""
        sidecar_path.unlink(missing_ok=True)
        sidecar_path.with_suffix(ENGINE_SUFFIX).unlink(missing_ok=True)

    # -- the one call the runtime makes ------------------------------------------------------
    def load_or_build(self, onnx_path: Path, key: EngineKey, *, build: Callable[[], bytes],
                      deserialize: Callable[[bytes], T], force: bool = False,
                      details: dict | None = None) -> CachedEngine[T]:
        """The engine for ``key``: reused from the cache when intact, else built and stored.

        ``build()`` returns the serialized engine; ``deserialize(bytes)`` returns the runtime
        engine and raises (or returns None) for bytes it cannot use, which marks a cached
        entry corrupt. Runs under the entry's lock: concurrent callers build once.
        """
        self.make_directory()
        engine_path = self.engine_path(onnx_path, key)
        with FileLock(engine_path.with_suffix(LOCK_SUFFIX)):
            self._remove_temporaries(engine_path)
            if force:
                found = CacheLookup(FORCED, engine_path, 'force_engine_update is set',
                                    stale=tuple(self._stale_entries(onnx_path, key)))
            else:
                found = self.lookup(onnx_path, key)
            if found.status == HIT:
                start = time.perf_counter()
                try:
                    engine = _checked(deserialize(found.data))
                except Exception as exc:  # noqa: BLE001  (TensorRT raises assorted types)
                    found = CacheLookup(CORRUPT, engine_path,
                                        f'{engine_path.name} does not deserialise ({exc})')
                else:
                    return CachedEngine(engine, HIT, engine_path, '', None,
                                        time.perf_counter() - start)
            if found.status in (CORRUPT, MISMATCH, FORCED):
                self._log(f'rebuilding TensorRT engine for {Path(onnx_path).name}: '
                          f'{found.status}: {found.reason}')
            start = time.perf_counter()
            engine_bytes = bytes(build())
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            try:
                engine = _checked(deserialize(engine_bytes))
            except Exception as exc:  # noqa: BLE001
                raise EngineCacheError(f'the engine just built for {Path(onnx_path).name} does '
                                       f'not deserialise ({exc})') from None
            load_s = time.perf_counter() - start
            self._write_entry(onnx_path, key, engine_bytes,
                              {'build_seconds': round(build_s, 3), **(details or {})})
            for sidecar_path in found.stale:
                if sidecar_path != self.sidecar_path(engine_path):
                    self.remove_entry(sidecar_path)
            return CachedEngine(engine, found.status, engine_path, found.reason, build_s, load_s)

    def _remove_temporaries(self, engine_path: Path) -> None:
        """Temporary files of this entry left by a crashed writer (only the lock holder writes)."""
        for name in (engine_path.name, self.sidecar_path(engine_path).name):
            for tmp in self.directory.glob(f'.{name}.*.tmp'):
                tmp.unlink(missing_ok=True)


class FileLock:
    """Exclusive ``fcntl.flock`` on ``path`` for the duration of a with-block.

    flock() locks belong to an open file description, so two threads of one process that
    each open the lock file exclude each other just as two processes do. The lock file is
    never deleted: unlinking it would let a late opener lock a different inode.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = -1

    def __enter__(self) -> 'FileLock':
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOGGER.warning('waiting for another process building the engine %s', self.path.stem)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def __exit__(self, *exc_info) -> bool:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        return False


def _checked(engine):
    if engine is None:
        raise ValueError('the deserialiser returned nothing')
    return engine

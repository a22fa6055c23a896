"""The TensorRT engine cache without TensorRT: key, hit/miss/mismatch/corrupt/force, crashes.

The builder and the deserialiser are plain functions here: "engines" are byte strings that
name what they were built from, and deserialising one returns it decoded.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace

import pytest

from depth_nodes.runtime import engine_cache
from depth_nodes.runtime.engine_cache import (CORRUPT, FORCED, HIT, MISMATCH, MISS, EngineCache,
                                              EngineCacheError, EngineKey, atomic_write_bytes,
                                              default_cache_dir, make_engine_key)

KEY_ARGS = dict(tensorrt_version='10.3.0', gpu_name='Orin', compute_capability=(8, 7),
                precision='fp16', sm_count=16, builder_settings='tf32=off,workspace_mb=1024')


@pytest.fixture
def model(tmp_path):
    path = tmp_path / 'models' / 'eigen.onnx'
    path.parent.mkdir()
    path.write_bytes(b'onnx graph v1')
    return path


class Builder:
    """Counts builds; the 'engine' is the bytes of the key's digest, so it is checkable."""

    def __init__(self, delay_s=0.0):
        self.calls = 0
        self.delay_s = delay_s

    def for_key(self, key):
        def build():
            self.calls += 1
            time.sleep(self.delay_s)
            return b'engine:' + key.digest().encode()
        return build


def deserialize(data: bytes) -> str:
    if not data.startswith(b'engine:'):
        raise RuntimeError('not an engine')
    return data.decode()


def test_key_components_are_hashes_versions_gpu_and_precision(model, tmp_path):
    key = make_engine_key(model, **KEY_ARGS)
    assert key == EngineKey(hashlib.sha256(b'onnx graph v1').hexdigest(), '10.3.0', 'Orin',
                            '8.7', 'fp16', '', '16', 'tf32=off,workspace_mb=1024')
    calibration = tmp_path / 'table.calib'
    calibration.write_bytes(b'TRT-1001-EntropyCalibration2')
    int8 = make_engine_key(model, **{**KEY_ARGS, 'precision': 'int8'},
                           calibration_cache=calibration)
    assert int8.calibration_sha256 == hashlib.sha256(b'TRT-1001-EntropyCalibration2').hexdigest()
    # The calibration table only matters to int8 engines.
    assert make_engine_key(model, **KEY_ARGS, calibration_cache=calibration) == key


@pytest.mark.parametrize('field, value', [
    ('onnx_sha256', '0' * 64), ('tensorrt_version', '10.4.0'), ('gpu_name', 'RTX 4090'),
    ('compute_capability', '8.9'), ('precision', 'fp32'), ('calibration_sha256', 'ab' * 32),
    ('sm_count', '8'), ('builder_settings', 'tf32=on,workspace_mb=1024')])
def test_every_key_field_changes_the_digest(model, field, value):
    key = make_engine_key(model, **KEY_ARGS)
    other = replace(key, **{field: value})
    assert other.digest() != key.digest()
    assert [d.split(':')[0] for d in other.differences(key)] == [field]


def test_external_weights_file_is_part_of_the_model_hash(model):
    before = make_engine_key(model, **KEY_ARGS).onnx_sha256
    model.with_name('eigen.onnx.data').write_bytes(b'weights')
    after = make_engine_key(model, **KEY_ARGS).onnx_sha256
    assert after != before
    expected = hashlib.sha256((hashlib.sha256(b'onnx graph v1').hexdigest()
                               + hashlib.sha256(b'weights').hexdigest()).encode()).hexdigest()
    assert after == expected


def test_default_cache_dir_follows_ros_home(monkeypatch, tmp_path):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'roshome'))
    assert default_cache_dir() == tmp_path / 'roshome' / 'depth_nodes' / 'engines'
    monkeypatch.delenv('ROS_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert default_cache_dir() == tmp_path / 'home' / '.ros' / 'depth_nodes' / 'engines'


def test_miss_builds_and_stores_then_hit_reuses_without_building(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache')
    key = make_engine_key(model, **KEY_ARGS)
    builder = Builder()
    first = cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert (first.status, builder.calls, first.engine) == (MISS, 1, f'engine:{key.digest()}')
    assert first.engine_path.name == f'eigen.fp16.{key.digest()[:16]}.engine'
    sidecar = json.loads(first.engine_path.with_suffix('.json').read_text())
    assert sidecar['key'] == {'onnx_sha256': key.onnx_sha256, 'tensorrt_version': '10.3.0',
                              'gpu_name': 'Orin', 'compute_capability': '8.7',
                              'precision': 'fp16', 'calibration_sha256': '', 'sm_count': '16',
                              'builder_settings': 'tf32=off,workspace_mb=1024'}
    assert sidecar['engine_bytes'] == len(b'engine:') + 64
    assert sidecar['onnx_path'] == str(model.resolve())
    second = cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert (second.status, builder.calls, second.build_s) == (HIT, 1, None)
    assert second.engine == first.engine


def test_changed_model_is_a_mismatch_rebuilt_and_the_stale_entry_removed(model, tmp_path):
    messages = []
    cache = EngineCache(tmp_path / 'cache', log=messages.append)
    old_key = make_engine_key(model, **KEY_ARGS)
    builder = Builder()
    old = cache.load_or_build(model, old_key, build=builder.for_key(old_key),
                              deserialize=deserialize)
    model.write_bytes(b'onnx graph v2 (retrained)')
    new_key = make_engine_key(model, **KEY_ARGS)
    new = cache.load_or_build(model, new_key, build=builder.for_key(new_key),
                              deserialize=deserialize)
    assert (new.status, builder.calls) == (MISMATCH, 2)
    assert (f'onnx_sha256: {old_key.onnx_sha256[:12]} -> {new_key.onnx_sha256[:12]}'
            in new.reason)
    assert not old.engine_path.exists() and not old.engine_path.with_suffix('.json').exists()
    assert sorted(p.name for p in cache.directory.glob('*.engine')) == [new.engine_path.name]
    assert len(messages) == 1 and 'rebuilding' in messages[0] and 'mismatch' in messages[0]


def test_changed_builder_settings_are_a_mismatch_naming_them(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    old_key = make_engine_key(model, **KEY_ARGS)
    cache.load_or_build(model, old_key, build=Builder().for_key(old_key),
                        deserialize=deserialize)
    new_key = replace(old_key, builder_settings='tf32=off,workspace_mb=2048')
    found = cache.lookup(model, new_key)
    assert found.status == MISMATCH
    assert found.reason.endswith('(builder_settings: tf32=off,workspace_mb=1024 -> '
                                 'tf32=off,workspace_mb=2048)')


@pytest.mark.parametrize('other', [dict(tensorrt_version='10.7.0'), dict(sm_count='8')])
def test_two_tensorrt_versions_or_orin_modules_sharing_the_directory_keep_their_engines(
        model, tmp_path, other):
    """Before: a TensorRT 10.3 and a 10.7 install sharing one cache evicted each other's
    engine at every start. Orin modules share name and compute capability, not engines."""
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    first = make_engine_key(model, **KEY_ARGS)
    second = replace(first, **other)
    builder = Builder()
    for key in (first, second, first, second):
        cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert builder.calls == 2
    assert cache.lookup(model, first).status == HIT and cache.lookup(model, second).status == HIT


def test_another_gpu_sharing_the_directory_keeps_its_engine(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    orin = make_engine_key(model, **KEY_ARGS)
    desktop = replace(orin, gpu_name='NVIDIA GeForce RTX 4090', compute_capability='8.9')
    builder = Builder()
    for key in (orin, desktop, orin, desktop):
        cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert builder.calls == 2       # one per GPU; neither evicts the other
    assert cache.lookup(model, orin).status == HIT and cache.lookup(model, desktop).status == HIT


@pytest.mark.parametrize('damage, expected_reason', [
    (lambda e: e.write_bytes(e.read_bytes()[:10]), 'truncated'),
    (lambda e: e.write_bytes(b'engine:' + b'x' * 64), 'does not match the SHA-256'),
    (lambda e: e.with_suffix('.json').unlink(), 'is missing (a write was interrupted'),
    (lambda e: e.with_suffix('.json').write_text('{"key": '), 'is unreadable'),
    (lambda e: e.unlink(), 'is missing but its sidecar exists'),
])
def test_damaged_entry_is_corrupt_rebuilt_and_then_hits(model, tmp_path, damage,
                                                        expected_reason):
    messages = []
    cache = EngineCache(tmp_path / 'cache', log=messages.append)
    key = make_engine_key(model, **KEY_ARGS)
    builder = Builder()
    path = cache.load_or_build(model, key, build=builder.for_key(key),
                               deserialize=deserialize).engine_path
    damage(path)
    rebuilt = cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert (rebuilt.status, builder.calls) == (CORRUPT, 2)
    assert expected_reason in rebuilt.reason and expected_reason in messages[0]
    assert cache.load_or_build(model, key, build=builder.for_key(key),
                               deserialize=deserialize).status == HIT
    assert builder.calls == 2


def test_engine_that_fails_to_deserialise_is_corrupt_and_rebuilt(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    key = make_engine_key(model, **KEY_ARGS)
    # Intact on disk (hash matches) but rejected by the runtime, e.g. a driver update.
    cache.store(model, key, b'serialized by another TensorRT build')
    builder = Builder()
    result = cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    assert result.status == CORRUPT and 'does not deserialise (not an engine)' in result.reason
    assert builder.calls == 1 and result.engine == f'engine:{key.digest()}'


def test_a_build_that_does_not_deserialise_is_an_error_and_not_cached(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache')
    key = make_engine_key(model, **KEY_ARGS)
    with pytest.raises(EngineCacheError, match='just built for eigen.onnx does not deserialise'):
        cache.load_or_build(model, key, build=lambda: b'garbage', deserialize=deserialize)
    assert cache.lookup(model, key).status == MISS


def test_force_engine_update_rebuilds_a_cached_engine(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    key = make_engine_key(model, **KEY_ARGS)
    builder = Builder()
    cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize)
    forced = cache.load_or_build(model, key, build=builder.for_key(key), deserialize=deserialize,
                                 force=True)
    assert (forced.status, builder.calls) == (FORCED, 2)
    assert cache.lookup(model, key).status == HIT


def test_unusable_cache_directory_is_a_clear_error(model, tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('')
    cache = EngineCache(blocker / 'engines')
    with pytest.raises(EngineCacheError, match="cannot create the engine cache directory .*"
                                               'engine_cache_dir'):
        cache.load_or_build(model, make_engine_key(model, **KEY_ARGS), build=lambda: b'x',
                            deserialize=deserialize)


# -- crashes: a child process dies (os._exit) at a chosen point of a write ------------------
CRASH_SCRIPT = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    from depth_nodes.runtime import engine_cache
    from depth_nodes.runtime.engine_cache import EngineCache, make_engine_key
    model, cache_dir, crash_point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    real_replace, calls = os.replace, []
    def crashing_replace(src, dst):
        calls.append(dst)
        if crash_point == 'engine-rename' or (crash_point == 'sidecar-rename' and
                                              str(dst).endswith('.json')):
            os._exit(9)     # power cut: no cleanup, no exception handlers
        real_replace(src, dst)
    engine_cache.os.replace = crashing_replace
    key = make_engine_key(model, tensorrt_version='10.3.0', gpu_name='Orin',
                          compute_capability=(8, 7), precision='fp16', sm_count=16,
                          builder_settings='tf32=off,workspace_mb=1024')
    EngineCache(cache_dir).load_or_build(model, key, build=lambda: b'engine:' + b'e' * 4096,
                                         deserialize=lambda b: b)
''')


def run_crashing_build(model, cache_dir, crash_point):
    proc = subprocess.run([sys.executable, '-c', CRASH_SCRIPT, str(model), str(cache_dir),
                           crash_point], capture_output=True, text=True, timeout=60,
                          cwd=cache_dir.parent)   # not the checkout: import the installed package
    assert proc.returncode == 9, proc.stderr


def test_crash_before_the_engine_is_renamed_leaves_only_a_temporary(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    run_crashing_build(model, cache.directory, 'engine-rename')
    key = make_engine_key(model, **KEY_ARGS)
    leftovers = sorted(p.name for p in cache.directory.iterdir())
    assert [n for n in leftovers if n.endswith('.engine') or n.endswith('.json')] == []
    assert any(n.endswith('.tmp') for n in leftovers)     # the fully written, unrenamed temp
    assert cache.lookup(model, key).status == MISS
    builder = Builder()
    assert cache.load_or_build(model, key, build=builder.for_key(key),
                               deserialize=deserialize).status == MISS
    assert not any(p.name.endswith('.tmp') for p in cache.directory.iterdir())


def test_crash_between_engine_and_sidecar_is_not_a_complete_entry(model, tmp_path):
    cache = EngineCache(tmp_path / 'cache', log=lambda m: None)
    run_crashing_build(model, cache.directory, 'sidecar-rename')
    key = make_engine_key(model, **KEY_ARGS)
    engine_file = cache.engine_path(model, key)
    assert engine_file.read_bytes() == b'engine:' + b'e' * 4096   # the engine made it ...
    found = cache.lookup(model, key)                                # ... but does not count
    assert found.status == CORRUPT and 'write was interrupted' in found.reason
    builder = Builder()
    assert cache.load_or_build(model, key, build=builder.for_key(key),
                               deserialize=deserialize).status == CORRUPT
    assert cache.lookup(model, key).status == HIT and builder.calls == 1


def test_atomic_write_replaces_whole_files_and_cleans_up_on_error(tmp_path, monkeypatch):
    target = tmp_path / 'file.bin'
    atomic_write_bytes(target, b'old')

    def failing_fsync(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(engine_cache.os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='No space left'):
        atomic_write_bytes(target, b'new content')
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file.bin']


# -- two nodes starting together build once ---------------------------------------------------
def test_threads_starting_together_build_once(model, tmp_path):
    cache_dir = tmp_path / 'cache'
    key = make_engine_key(model, **KEY_ARGS)
    builder = Builder(delay_s=0.3)
    barrier = threading.Barrier(4)
    results = []

    def start_node():
        barrier.wait()
        results.append(EngineCache(cache_dir).load_or_build(
            model, key, build=builder.for_key(key), deserialize=deserialize))
    threads = [threading.Thread(target=start_node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert builder.calls == 1
    assert sorted(r.status for r in results) == [HIT, HIT, HIT, MISS]
    assert {r.engine for r in results} == {f'engine:{key.digest()}'}


PROCESS_SCRIPT = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from depth_nodes.runtime.engine_cache import EngineCache, make_engine_key
    model, cache_dir, work, index, count = (Path(sys.argv[1]), Path(sys.argv[2]),
                                            Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    key = make_engine_key(model, tensorrt_version='10.3.0', gpu_name='Orin',
                          compute_capability=(8, 7), precision='fp16', sm_count=16,
                          builder_settings='tf32=off,workspace_mb=1024')
    def build():
        with open(work / 'builds.log', 'a') as log:
            log.write(index + '\\n')
        deadline = time.monotonic() + 30      # hold the lock until every process is waiting
        while len(list(work.glob('ready-*'))) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        return b'engine:' + key.digest().encode()
    (work / f'ready-{index}').touch()
    result = EngineCache(cache_dir).load_or_build(model, key, build=build,
                                                  deserialize=lambda b: b.decode())
    print(result.status, result.engine)
''')


def test_processes_starting_together_build_once(model, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    count = 3
    procs = [subprocess.Popen([sys.executable, '-c', PROCESS_SCRIPT, str(model),
                               str(tmp_path / 'cache'), str(work), str(i), str(count)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=work)   # not the checkout: import the installed package
             for i in range(count)]
    outputs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0] * count, [err for _, err in outputs]
    assert len((work / 'builds.log').read_text().split()) == 1
    statuses = sorted(out.split()[0] for out, _ in outputs)
    assert statuses == [HIT] * (count - 1) + [MISS]
    key = make_engine_key(model, **KEY_ARGS)
    assert {out.split()[1] for out, _ in outputs} == {f'engine:{key.digest()}'}


def test_store_from_the_cli_is_found_by_a_node(model, tmp_path):
    key = make_engine_key(model, **KEY_ARGS)
    path = EngineCache(tmp_path / 'cache').store(model, key, b'engine:' + key.digest().encode(),
                                                 {'workspace_mb': 2048})
    assert json.loads(path.with_suffix('.json').read_text())['workspace_mb'] == 2048
    result = EngineCache(tmp_path / 'cache').load_or_build(
        model, key, build=lambda: pytest.fail('must not build'), deserialize=deserialize)
    assert result.status == HIT


def test_an_entry_is_engine_sidecar_and_lock(model, tmp_path):
    # The lock file stays (unlinking it would let a late process lock a fresh inode).
    cache = EngineCache(tmp_path / 'cache')
    key = make_engine_key(model, **KEY_ARGS)
    cache.load_or_build(model, key, build=Builder().for_key(key), deserialize=deserialize)
    names = sorted(os.listdir(cache.directory))
    stem = cache.entry_stem(model, key)
    assert names == [f'{stem}.engine', f'{stem}.json', f'{stem}.lock']

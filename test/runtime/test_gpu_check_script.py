"""tools/gpu_check.sh: syntax, and its --dry-run (what a GPU run will check) without a GPU."""
import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'gpu_check.sh'
MODELS = sorted(p.stem for p in (REPO / 'models').glob('*.onnx'))


def test_gpu_check_is_valid_bash():
    proc = subprocess.run(['bash', '-n', str(SCRIPT)], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, '')


def test_dry_run_lists_every_check_and_writes_the_plan(tmp_path):
    output = tmp_path / 'plan.json'
    proc = subprocess.run(['bash', str(SCRIPT), '--dry-run', '--output', str(output)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(MODELS) == 6
    for prefix in ('04_build_engine', '09_node_start'):
        planned = sorted(m.group(1) for m in (re.search(rf'{prefix}\.(\S+) ', x) for x in lines)
                         if m)
        assert planned == sorted(f'{m}.{p}' for m in MODELS for p in ('fp32', 'fp16', 'int8'))
    for step in ('01_versions', '02_tensorrt_tests', '05_parity', '06_cache_miss',
                 '06_cache_hit', '07_two_processes', '08_latency_640x480'):
        assert sum(x.lstrip().startswith(step + ' ') for x in lines) == 1, step
    assert any('--calibration-dir' in x for x in lines if '.int8 ' in x and '04_' in x)
    # Step time limits fit the 8-minute goal's budget; the plan is one JSON.
    assert 'budget 450 s' in lines[0]
    plan = json.loads(output.read_text())
    assert plan['00_run']['dry_run'] is True
    assert sorted(Path(m['model']).stem for m in plan['00_plan']['models']) == MODELS
    assert {m['node'] for m in plan['00_plan']['models']} == {
        'mono_depth_node', 'nir_depth_node', 'semidense_depth_node'}


def test_steps_past_the_budget_are_recorded_as_skipped(tmp_path):
    output = tmp_path / 'result.json'
    proc = subprocess.run(['bash', str(SCRIPT), '--budget', '0', '--output', str(output)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(output.read_text())
    assert result.pop('00_run')['budget_s'] == 0
    assert len(result) == 3 + 2 * 3 * len(MODELS) + 5      # every step, none of them run
    assert set(json.dumps(v) for v in result.values()) == {
        '{"skipped": "time budget of 0 s used up"}'}

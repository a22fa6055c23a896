"""Security hygiene over every Python file of the repository (static, with ast), and the
validation of path parameters.

Checkpoints, configs and bags come from other machines: nothing read from them may execute
code. So: torch.load only with weights_only=True, YAML only through safe loaders, no pickle,
no eval/exec, no shell=True / os.system, numpy loads without pickles. A node parameter that
names a file or directory is checked before use; a new one must be added (with its check)
to PATH_PARAMETERS below.
"""
import ast
from pathlib import Path

import pytest

from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.engine_cache import EngineCache, EngineCacheError
from depth_nodes.runtime.model import resolve_model_path

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {'.venv', 'build', 'install', 'log', '.git', '__pycache__', 'demo_output'}
SAFE_YAML_LOADERS = {'SafeLoader', 'CSafeLoader', 'BaseLoader', 'CBaseLoader'}


def python_files() -> list[Path]:
    return sorted(p for p in REPO.rglob('*.py')
                  if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def dotted(node: ast.AST) -> str:
    """'yaml.load' for the call target yaml.load, 'eval' for eval, '?.eval' for f().eval."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f'{dotted(node.value) or "?"}.{node.attr}'
    return ''


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def problems_in(source: str) -> list[str]:
    """What this file does that it must not, one line per call."""
    found = []
    for call in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)):
        name, line = dotted(call.func), call.lineno
        if name in ('eval', 'exec'):
            found.append(f'{line}: {name}() runs code')
        if name in ('os.system', 'os.popen', 'subprocess.getoutput',
                    'subprocess.getstatusoutput'):
            found.append(f'{line}: {name}() runs a shell')
        if is_true(keyword(call, 'shell')):
            found.append(f'{line}: shell=True')
        if name.split('.')[0] in ('pickle', 'cPickle', 'dill', 'cloudpickle', 'marshal',
                                  'joblib') and name.split('.')[-1] in ('load', 'loads'):
            found.append(f'{line}: {name}() unpickles')
        if name.endswith('torch.load') or name == 'torch.load':
            if not is_true(keyword(call, 'weights_only')):
                found.append(f'{line}: torch.load without weights_only=True')
        if name in ('yaml.unsafe_load', 'yaml.full_load', 'yaml.full_load_all',
                    'yaml.unsafe_load_all'):
            found.append(f'{line}: {name}()')
        if name in ('yaml.load', 'yaml.load_all'):
            loader = keyword(call, 'Loader') or (call.args[1] if len(call.args) > 1 else None)
            if dotted(loader).split('.')[-1] not in SAFE_YAML_LOADERS:
                found.append(f'{line}: {name} without a safe Loader (use yaml.safe_load)')
        if name.split('.')[-1] == 'load' and name.split('.')[0] in ('np', 'numpy') \
                and is_true(keyword(call, 'allow_pickle')):
            found.append(f'{line}: {name}(allow_pickle=True)')
    return found


def test_the_checker_finds_each_kind_of_problem():
    bad = '\n'.join([
        'import yaml, torch, pickle, subprocess, os, numpy as np',
        'yaml.load(text)',
        'yaml.load(text, Loader=yaml.Loader)',
        'yaml.full_load(text)',
        'torch.load(path)',
        'torch.load(path, weights_only=False)',
        'pickle.loads(blob)',
        'subprocess.run(cmd, shell=True)',
        'os.system(cmd)',
        'eval(expression)',
        'np.load(path, allow_pickle=True)',
    ])
    assert [p.split(': ', 1)[0] for p in problems_in(bad)] == [str(i) for i in range(2, 12)]
    good = '\n'.join([
        'yaml.safe_load(text)', 'yaml.load(text, Loader=yaml.SafeLoader)',
        'torch.load(path, map_location="cpu", weights_only=True)', 'module.eval()',
        'subprocess.run(["ls", path], check=True)', 'np.load(path, allow_pickle=False)',
        'ast.literal_eval(text)', 'compile(tree, name, "exec")',
    ])
    assert problems_in(good) == []


def test_no_python_file_loads_untrusted_data_unsafely():
    files = python_files()
    assert len(files) > 50 and REPO / 'depth_nodes' / 'process_bag.py' in files
    problems = [f'{path.relative_to(REPO)}:{problem}' for path in files
                for problem in problems_in(path.read_text())]
    assert problems == []


# -- path parameters ------------------------------------------------------------------------
def check_model(value: str, tmp_path: Path) -> None:
    resolve_model_path(value)


def check_engine_cache_dir(value: str, tmp_path: Path) -> None:
    EngineCache(value).make_directory()


# Parameter -> (its check, values it must refuse, the error those raise).
PATH_PARAMETERS = {
    'model': (check_model, ModelLoadError,
              lambda tmp: [str(tmp / 'missing.onnx'), str(tmp), str(tmp / 'notes.txt'), '']),
    # nir_depth_node's second stage ('' = none: the model runs alone).
    'depth_model': (check_model, ModelLoadError,
                    lambda tmp: [str(tmp / 'missing.onnx'), str(tmp), str(tmp / 'notes.txt')]),
    'engine_cache_dir': (check_engine_cache_dir, EngineCacheError,
                         lambda tmp: [str(tmp / 'notes.txt'), str(tmp / 'notes.txt' / 'x')]),
}
PATH_WORDS = ('path', 'file', 'dir', 'directory', 'model', 'folder')


def declared_parameters() -> set[str]:
    """Names of the nodes' parameters: declare_parameter('name', ...) and the tables the
    nodes declare from, Parameter('name', ...)."""
    names = set()
    for path in (REPO / 'depth_nodes').rglob('*.py'):
        for call in (n for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, ast.Call)):
            if dotted(call.func).split('.')[-1] in ('declare_parameter', 'Parameter') \
                    and call.args \
                    and isinstance(call.args[0], ast.Constant) \
                    and isinstance(call.args[0].value, str):
                names.add(call.args[0].value)
    return names


def test_every_path_parameter_of_the_nodes_has_a_check():
    names = declared_parameters()
    assert {'model', 'backend', 'publish_points'} <= names          # the scan works
    path_like = {n for n in names if any(w in n.split('_') or n.endswith(w)
                                         for w in PATH_WORDS)}
    assert path_like <= set(PATH_PARAMETERS), \
        f'path parameters without a check in this test: {sorted(path_like - set(PATH_PARAMETERS))}'


@pytest.mark.parametrize('name', sorted(PATH_PARAMETERS))
def test_path_parameter_checks_refuse_bad_values(name, tmp_path):
    (tmp_path / 'notes.txt').write_text('not a model')
    check, error, bad_values = PATH_PARAMETERS[name]
    for value in bad_values(tmp_path):
        with pytest.raises(error):
            check(value, tmp_path)

"""The trainer, checkpoints and export: one iteration per config through the CLIs, exact
resume, atomic checkpoints, config overrides."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml

import fake_depth_scenes
from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from training import export as export_cli
from training import train as train_cli
from training.checkpoint import load_checkpoint, method_from_checkpoint, save_checkpoint
from training.config import ConfigError, load_config
from training.networks.eigen import EigenArchitecture
from training.datasets.augment import AugmentConfig, augment
from training.train import EpochAugmentedDataset, ResumableSampler, run_training

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'training' / 'configs'
CONFIGS = ('eigen_nyu', 'eigen_kitti', 'eigen_synthetic_demo')

torch.set_num_threads(1)


def tiny_overrides(run_dir: Path, coarse: int = 1, fine: int = 1) -> list[str]:
    """Keep the config's input size and settings; shrink widths, data and iterations."""
    return ['method.options.width_scale=0.0625', 'method.options.fc_units=16',
            'trainer.batch_size=2', f'trainer.stage_steps.coarse={coarse}',
            f'trainer.stage_steps.fine={fine}', f'trainer.run_dir={run_dir}',
            f'data.dataset={fake_depth_scenes.NAME}', 'data.options={height: 240, width: 320}',
            'data.val_split=',
            'data.num_workers=0', 'data.cache=false', 'data.root=null',
            'trainer.threads=1', 'trainer.log_every=1']


@pytest.mark.parametrize('name', CONFIGS)
def test_one_iteration_train_export_and_onnx_parity_per_config(name, tmp_path):
    config_path = CONFIG_DIR / f'{name}.yaml'
    overrides = tiny_overrides(tmp_path / 'run')
    rc = train_cli.main(['--config', str(config_path), *overrides, '--device', 'cpu',
                         '--no-progress'])
    assert rc == 0
    run = tmp_path / 'run'
    coarse, last = load_checkpoint(run / 'checkpoints' / 'coarse.pt'), \
        load_checkpoint(run / 'checkpoints' / 'last.pt')
    assert (coarse['step'], coarse['stage']) == (1, 'coarse')
    assert (last['step'], last['stage']) == (2, 'fine')
    # The resolved config saved with the run reloads to the same experiment.
    assert load_config(run / 'config.yaml').to_dict() == \
        load_config(config_path, overrides + ['trainer.device=cpu']).to_dict()

    paper = yaml.safe_load(config_path.read_text())['method']['options']
    arch = EigenArchitecture(paper['input_height'], paper['input_width'])
    model = onnx.load(str(run / 'model.onnx'))
    assert {o.domain: o.version for o in model.opset_import}[''] == 17
    dims = lambda value: [d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == [1, 3, paper['input_height'], paper['input_width']]
    assert dims(model.graph.output[0]) == [1, 1, *arch.output_size]
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL
                   for init in model.graph.initializer)
    spec = ModelSpec.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert (spec.method, spec.output_kind, spec.output_name) == ('eigen', 'log_depth',
                                                                 'log_depth')
    assert spec.input_size == (paper['input_height'], paper['input_width'])
    assert (spec.min_depth, spec.max_depth) == (paper['min_depth'], paper['max_depth'])

    # Independent parity check: the checkpoint's network in PyTorch vs the ONNX file in
    # ONNX Runtime vs the .pt2 in the nodes' torch backend, on an input the export never saw.
    import onnxruntime as ort
    from depth_nodes.runtime.torch_engine import TorchEngine
    method, _ = method_from_checkpoint(run / 'checkpoints' / 'last.pt')
    image = torch.rand(1, 3, *spec.input_size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = method.export_bundle().module(image).numpy()
    session = ort.InferenceSession(str(run / 'model.onnx'), providers=['CPUExecutionProvider'])
    assert np.max(np.abs(session.run(None, {'image': image.numpy()})[0] - expected)) < 1e-4
    program = TorchEngine(run / 'model.pt2').run({'image': image.numpy()})['log_depth']
    assert np.max(np.abs(program - expected)) < 1e-4


def test_resume_continues_from_the_saved_step_exactly(tmp_path):
    """2 coarse + 2 fine iterations straight == stopped after 1 and 3, resumed each time."""
    def config(run):
        return load_config(CONFIG_DIR / 'eigen_synthetic_demo.yaml',
                           tiny_overrides(run, coarse=2, fine=2)
                           + ['trainer.export_onnx=false', 'trainer.device=cpu'])
    # Odd size: epochs wrap mid-batch. Augmented per (seed, epoch, index): replayed exactly.
    dataset = EpochAugmentedDataset(fake_depth_scenes.FakeRooms(size=5), AugmentConfig(), 0)
    straight = run_training(config(tmp_path / 'a'), dataset=dataset, progress=False)
    first = run_training(config(tmp_path / 'b'), dataset=dataset, until_step=1, progress=False)
    assert first.step == 1
    saved = load_checkpoint(tmp_path / 'b' / 'checkpoints' / 'last.pt')
    assert (saved['step'], saved['stage']) == (1, 'coarse')
    second = run_training(config(tmp_path / 'b'), dataset=dataset, until_step=3, progress=False)
    assert second.step == 3
    resumed = run_training(config(tmp_path / 'b'), dataset=dataset, progress=False)
    assert resumed.step == straight.step == 4
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    for net in ('coarse', 'fine'):
        for key, value in a['networks'][net].items():
            assert torch.equal(value, b['networks'][net][key]), f'{net}.{key}'
    for name in ('coarse', 'fine'):
        for key, state in a['optimizers'][name]['state'].items():
            assert torch.equal(state['exp_avg'], b['optimizers'][name]['state'][key]['exp_avg'])


def test_resume_refuses_a_checkpoint_of_other_method_options(tmp_path):
    base = tiny_overrides(tmp_path / 'run') + ['trainer.export_onnx=false', 'trainer.device=cpu']
    dataset = fake_depth_scenes.FakeRooms(size=4)
    run_training(load_config(CONFIG_DIR / 'eigen_synthetic_demo.yaml', base),
                 dataset=dataset, until_step=1, progress=False)
    other = load_config(CONFIG_DIR / 'eigen_synthetic_demo.yaml',
                        base + ['method.options.fc_units=8'])
    with pytest.raises(Exception, match='fc_units'):
        run_training(other, dataset=dataset, progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / 'last.pt'
    save_checkpoint(path, {'format': 'depth_nodes.training/1', 'step': 1})

    def crash(obj, f, *args, **kwargs):
        f.write(b'half a checkpoint')
        raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(path, {'format': 'depth_nodes.training/1', 'step': 2})
    monkeypatch.undo()
    assert load_checkpoint(path)['step'] == 1          # the previous checkpoint, intact
    assert [p.name for p in tmp_path.iterdir()] == ['last.pt']   # no temporary left


def test_checkpoint_holds_plain_containers_and_inference_facts(tmp_path):
    config = load_config(CONFIG_DIR / 'eigen_synthetic_demo.yaml',
                         tiny_overrides(tmp_path / 'run', coarse=1, fine=0)
                         + ['trainer.export_onnx=false', 'trainer.device=cpu'])
    run_training(config, dataset=fake_depth_scenes.FakeRooms(size=2), progress=False)
    path = tmp_path / 'run' / 'checkpoints' / 'last.pt'
    raw = torch.load(path, weights_only=True)       # no pickled classes anywhere
    assert raw['input_size'] == [114, 152]
    spec = ModelSpec.from_json(raw['spec'])
    assert spec.input_size == (114, 152) and spec.extras['output_stage'] == 'coarse'
    assert raw['config']['trainer']['batch_size'] == 2
    assert raw['method_options']['width_scale'] == 0.0625
    with pytest.raises(Exception, match='not a depth_nodes training checkpoint'):
        bogus = tmp_path / 'bogus.pt'
        torch.save({'weights': torch.zeros(1)}, bogus)
        load_checkpoint(bogus)


def test_config_overrides_are_typed_and_unknown_keys_are_named(tmp_path):
    path = CONFIG_DIR / 'eigen_nyu.yaml'
    config = load_config(path, ['trainer.batch_size=8', 'method.options.dropout=0.25',
                                'method.options.mean=[0.5, 0.5, 0.5]', 'data.cache=true'])
    assert config.trainer.batch_size == 8 and config.data.cache is True
    method_config = config.method_config()
    assert method_config.dropout == 0.25 and method_config.mean == (0.5, 0.5, 0.5)
    assert method_config.lr_coarse_fc == 0.1 and method_config.momentum == 0.9
    with pytest.raises(ConfigError, match='batch_sise'):
        load_config(path, ['trainer.batch_sise=8'])
    with pytest.raises(ConfigError, match='width_scal'):
        load_config(path, ['method.options.width_scal=2'])
    with pytest.raises(ConfigError, match="unknown method 'eigne'"):
        load_config(path, ['method.name=eigne'])
    broken = tmp_path / 'broken.yaml'
    broken.write_text('experiment: [unclosed')
    with pytest.raises(ConfigError, match='broken.yaml'):
        load_config(broken)


def test_paper_settings_in_the_nyu_config():
    c = load_config(CONFIG_DIR / 'eigen_nyu.yaml')
    m = c.method_config()
    assert (m.input_width, m.input_height, c.trainer.batch_size) == (304, 228, 32)
    assert (m.optimizer, m.momentum, m.scale_invariant_lambda) == ('sgd', 0.9, 0.5)
    assert (m.lr_coarse_conv, m.lr_coarse_fc, m.lr_fine_outer, m.lr_fine_middle) == \
        (0.001, 0.1, 0.001, 0.01)
    # 2M coarse and 1.5M fine training samples at batch 32
    assert dict(c.trainer.stage_steps) == {'coarse': 2_000_000 // 32, 'fine': 1_500_000 // 32}


def test_resumable_sampler_resumes_mid_epoch_and_splits_ranks():
    full = ResumableSampler(10, seed=3)
    stream = [i for _, i in zip(range(25), iter(full))]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]                       # a new permutation per epoch
    resumed = [i for _, i in zip(range(13), iter(ResumableSampler(10, seed=3, start=12)))]
    assert resumed == stream[12:25]
    ranks = [ResumableSampler(10, seed=3, rank=r, world_size=2).epoch_indices(0)
             for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(10))
    assert ranks[0] == full.epoch_indices(0)[0::2]


def test_epoch_augmentation_is_seeded_by_seed_epoch_and_index(tmp_path):
    base = fake_depth_scenes.FakeRooms(size=3)
    data = EpochAugmentedDataset(base, AugmentConfig(flip_probability=0.5), seed=4)
    rng = np.random.default_rng(np.random.SeedSequence([4, 1, 2]))
    expected = augment(base[2], rng, AugmentConfig(flip_probability=0.5))
    assert np.array_equal(data[(1, 2)]['rgb'], expected['rgb'])
    assert np.array_equal(data[(1, 2)]['rgb'], data[(1, 2)]['rgb'])
    # over 8 epochs both orientations of the same sample occur
    flipped = {bool(np.array_equal(data[(e, 0)]['depth'][:, ::-1], base[0]['depth'],
                                   equal_nan=True)) for e in range(8)}
    assert flipped == {True, False}
    sampler = ResumableSampler(3, seed=0, with_epoch=True, start=2)
    assert [k for _, k in zip(range(2), iter(sampler))] == \
        [(0, ResumableSampler(3, seed=0).epoch_indices(0)[2]),
         (1, ResumableSampler(3, seed=0).epoch_indices(1)[0])]
    # the config routes data.augment to the training split only, validated at load
    with pytest.raises(ConfigError, match='flip_prob'):
        load_config(CONFIG_DIR / 'eigen_nyu.yaml', ['data.augment={flip_prob: 0.5}'])


def test_non_finite_loss_stops_with_the_step(tmp_path, monkeypatch):
    from training.models.eigen import EigenMethod
    monkeypatch.setattr(EigenMethod, 'training_step',
                        lambda self, batch, step: {'scale_invariant_loss': float('nan')})
    config = load_config(CONFIG_DIR / 'eigen_synthetic_demo.yaml',
                         tiny_overrides(tmp_path / 'run') + ['trainer.device=cpu'])
    with pytest.raises(FloatingPointError, match='step 0'):
        run_training(config, dataset=fake_depth_scenes.FakeRooms(size=2), progress=False)


def test_export_of_an_untrained_model_through_the_cli(tmp_path, capsys):
    output = tmp_path / 'untrained.onnx'
    rc = export_cli.main(['--untrained', '--method', 'eigen', '--config',
                          str(CONFIG_DIR / 'eigen_kitti.yaml'), '--output', str(output),
                          'method.options.width_scale=0.0625', 'method.options.fc_units=16'])
    assert rc == 0
    assert 'max abs error' in capsys.readouterr().out
    model = onnx.load(str(output))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta['depth_nodes.training'])['untrained'] is True
    assert ModelSpec.from_json(meta[METADATA_KEY]).input_size == (172, 576)
    assert output.with_suffix('.pt2').is_file()
    assert export_cli.main(['--untrained', '--method', 'no_such_method', '--output',
                            str(tmp_path / 'x.onnx')]) == 2

"""The training loop as a user meets it: exact resume with validation on, Ctrl-C, TensorBoard
after a resume, one-line config errors, overrides anywhere, the DDP / world-size messages."""
import os
import shlex
import signal
from pathlib import Path

import pytest
import torch

import fake_depth_scenes
from training import export as export_cli
from training import train as train_cli
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import ConfigError, load_config
from training.models.eigen import EigenMethod
from training.train import resume_command, run_training

CONFIG = Path(__file__).resolve().parents[2] / 'training' / 'configs' / \
    'eigen_synthetic_demo.yaml'


def overrides(run_dir: Path, coarse: int = 2, fine: int = 2) -> list[str]:
    return ['method.options.width_scale=0.0625', 'method.options.fc_units=16',
            'trainer.batch_size=2', f'trainer.stage_steps.coarse={coarse}',
            f'trainer.stage_steps.fine={fine}', f'trainer.run_dir={run_dir}',
            f'data.dataset={fake_depth_scenes.NAME}', 'data.options={size: 5}',
            'data.val_split=val', 'data.val_options={size: 4}', 'data.num_workers=0',
            'data.augment=null', 'data.cache=false', 'trainer.threads=1',
            'trainer.log_every=1', 'trainer.export_onnx=false', 'trainer.device=cpu']


def assert_same_weights(a, b):
    for net, tensors in a.state_dict()['networks'].items():
        for key, value in tensors.items():
            assert torch.equal(value, b.state_dict()['networks'][net][key]), f'{net}.{key}'


def test_resume_is_bit_identical_with_validation_on_checkpoint_steps(tmp_path):
    """Validation at every checkpoint (steps 1..4) must not move the random streams: the
    run stopped at 1 and 3 and resumed ends with exactly the uninterrupted run's weights.
    Dropout in Eigen's coarse stack draws from torch's generator at every step."""
    def config(run):
        return load_config(CONFIG, overrides(run) + [
            'trainer.val_every=1', 'trainer.checkpoint_every=1', 'trainer.val_batches=1'])
    straight = run_training(config(tmp_path / 'a'), progress=False)
    run_training(config(tmp_path / 'b'), until_step=1, progress=False)
    run_training(config(tmp_path / 'b'), until_step=3, progress=False)
    resumed = run_training(config(tmp_path / 'b'), progress=False)
    assert straight.step == resumed.step == 4
    assert straight.val_metrics == resumed.val_metrics
    assert_same_weights(straight.method, resumed.method)


def test_ctrl_c_saves_the_interrupted_step_and_prints_the_resume_command(
        tmp_path, monkeypatch, capsys):
    step_once = EigenMethod.training_step

    def interrupted_at_step_3(self, batch, step):
        logs = step_once(self, batch, step)
        if step == 2:                    # the third iteration: Ctrl-C while it runs
            os.kill(os.getpid(), signal.SIGINT)
        return logs
    monkeypatch.setattr(EigenMethod, 'training_step', interrupted_at_step_3)
    argv = ['--config', str(CONFIG), *overrides(tmp_path / 'run', 3, 2), '--no-progress',
            '--resume', 'never']
    assert train_cli.main(argv) == 130
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    checkpoint = load_checkpoint(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    assert (checkpoint['step'], checkpoint['stage']) == (3, 'coarse')
    command = err.strip().splitlines()[-1]
    assert command.startswith('resume with: python -m training.train --config ')
    assert '--resume' not in command and '--no-progress' in command
    # The handler is gone after training: the SIGINT default is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(EigenMethod, 'training_step', step_once)
    assert train_cli.main(shlex.split(command)[5:]) == 0
    assert load_checkpoint(tmp_path / 'run' / 'checkpoints' / 'last.pt')['step'] == 5


def test_resume_command_under_torchrun_drops_resume_and_keeps_overrides():
    assert resume_command(['--config', 'c.yaml', 'a=1', '--resume', 'x.pt', '--device',
                           'cpu', 'b=2'], 2) == \
        'torchrun --nproc_per_node=2 -m training.train --config c.yaml a=1 --device cpu b=2'
    assert resume_command(['--config', 'my dir/c.yaml', '--resume=never'], 1) == \
        "python -m training.train --config 'my dir/c.yaml'"


def test_tensorboard_keeps_the_resume_steps_points(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    config = load_config(CONFIG, overrides(tmp_path / 'run') + ['data.val_split='])
    run_training(config, until_step=2, progress=False)
    run_training(config, progress=False)
    events = EventAccumulator(str(tmp_path / 'run' / 'tensorboard'))
    events.Reload()
    steps = [e.step for e in events.Scalars('train/iterations_per_s')]
    assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize('override, key', [
    ('trainer.batch_size=abc', 'trainer.batch_size: expected int'),
    ('trainer.stage_steps={coarse: 1', 'override trainer.stage_steps'),
    ('method.options.lr_coarse_conv=-0.1', 'method.options.lr_coarse_conv: a learning rate'),
    ('data.root=/nonexistent/nyu', 'data.root: nyu_v2: root /nonexistent/nyu'),
    ('trainer.log_every=1.5', 'trainer.log_every: expected int'),
])
def test_config_errors_are_one_line_naming_the_key(override, key, tmp_path, capsys):
    config = CONFIG.parent / ('eigen_nyu.yaml' if 'data.root' in override else CONFIG.name)
    rc = train_cli.main(['--config', str(config), f'trainer.run_dir={tmp_path}', override,
                         '--device', 'cpu', '--no-progress'])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) - sum(line.startswith('[') for line in err) == 1, err
    assert key in err[-1]


def test_export_refuses_an_onnx_file_as_checkpoint(tmp_path, capsys):
    onnx_file = tmp_path / 'model.onnx'
    onnx_file.write_bytes(b'\x08\x07')
    with pytest.raises(SystemExit):
        export_cli.main(['--checkpoint', str(onnx_file), '--output', str(tmp_path / 'x.onnx')])
    err = capsys.readouterr().err
    assert 'is an exported model' in err and 'weights_only' not in err


def test_overrides_are_accepted_anywhere_on_the_command_line():
    args = train_cli.parse_args(['a.b=1', '--config', 'c.yaml', 'x=2', '--device', 'cpu',
                                 'y.z=3', '--until-step', '4', 'w=5'])
    assert args.overrides == ['a.b=1', 'x=2', 'y.z=3', 'w=5']
    assert (args.config, args.device, args.until_step) == ('c.yaml', 'cpu', 4)


def test_start_message_and_world_size_warning_on_resume(tmp_path, capsys):
    config = load_config(CONFIG, overrides(tmp_path / 'run') + ['data.val_split='])
    run_training(config, until_step=1, progress=False)
    assert 'training on cpu, one process (no DDP)' in capsys.readouterr().err
    path = tmp_path / 'run' / 'checkpoints' / 'last.pt'
    checkpoint = load_checkpoint(path)
    assert checkpoint['world_size'] == 1
    save_checkpoint(path, {**checkpoint, 'world_size': 2})
    run_training(config, until_step=2, progress=False)
    err = capsys.readouterr().err
    assert 'written by 2 process(es) and is resumed by 1' in err
    assert 'global batch changes from 2 x 2 to 1 x 2' in err


def test_progress_bar_shows_losses_first():
    logs = {'lr': 0.001, 'grad_norm': 2.0, 'loss': 0.123456, 'loss_fine': 1.5e-5}
    assert train_cli._progress_losses(logs, most=3) == {
        'loss': '0.1235', 'loss_fine': '1.5e-05', 'lr': '0.001'}


def test_validation_leaves_the_random_states_as_it_found_them(tmp_path):
    config = load_config(CONFIG, overrides(tmp_path / 'run', 1, 0))
    trainer_result = run_training(config, progress=False)
    trainer = train_cli.Trainer(config, trainer_result.method,
                                fake_depth_scenes.FakeRooms(size=4),
                                fake_depth_scenes.FakeRooms('val', size=4),
                                trainer_result.method.context, progress=False)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    assert trainer.validate()
    assert torch.equal(torch.rand(3), expected)


def test_init_weights_from_an_exported_program_and_from_a_checkpoint(tmp_path):
    """Fine-tuning starts from the weights of a .pt2 (e.g. models/dpn_synthetic.pt2) or a
    .pt; a resumed run ignores init_weights (its own checkpoint wins)."""
    from training import export
    first = run_training(load_config(CONFIG, overrides(tmp_path / 'a', 1, 0)
                                     + ['data.val_split=']), progress=False)
    export.export_onnx(first.method, tmp_path / 'a.onnx')
    export.export_onnx(first.method, tmp_path / 'half.onnx', weights='float16')
    trained = first.method.networks()['coarse'].state_dict()
    for source in (tmp_path / 'a.pt2', tmp_path / 'a' / 'checkpoints' / 'last.pt',
                   tmp_path / 'half.pt2'):
        config = load_config(CONFIG, overrides(tmp_path / source.stem, 0, 0)
                             + ['data.val_split=', 'trainer.stage_steps.fine=0',
                                'trainer.stage_steps.coarse=0', f'trainer.init_weights={source}'])
        method = train_cli.get_method_class('eigen')(config.method_config())
        train_cli.init_weights(method, source)
        for key, value in method.networks()['coarse'].state_dict().items():
            if source.stem == 'half' and value.numel() >= 1024 and 'running' not in key:
                # a float16 weight of the half-size program, back as float32
                assert torch.equal(value, trained[key].half().float()), key
                assert value.dtype == torch.float32
            else:
                assert torch.equal(value, trained[key]), key
    with pytest.raises(ConfigError, match='init_weights'):
        train_cli.init_weights(method, tmp_path / 'missing.pt2')

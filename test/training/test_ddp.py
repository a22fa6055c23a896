"""Data-parallel training: two CPU processes on the gloo backend, as torchrun would start them.

Each process runs the trainer exactly as under ``torchrun --nproc_per_node=2`` (RANK,
WORLD_SIZE, MASTER_ADDR/PORT in the environment). One coarse and one fine iteration of
batch 2 per process must leave both processes with identical weights, equal to a single
process training on the union of their batches with batch 4 (DDP averages the gradients).
"""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import fake_depth_scenes
from training.config import load_config
from training.train import run_training, seed_everything

CONFIG = Path(__file__).resolve().parents[2] / 'training' / 'configs' / 'eigen_synthetic_demo.yaml'


def _config(run_dir: Path, batch_size: int):
    # SGD (its update is linear in the gradient) and no dropout: the only difference between
    # the runs is how the batch is split over processes.
    return load_config(CONFIG, [
        'method.options.width_scale=0.0625', 'method.options.fc_units=16',
        'method.options.dropout=0.0', 'method.options.optimizer=sgd',
        'method.options.lr_coarse_fc=0.01', 'method.options.lr_fine_middle=0.01',
        f'trainer.batch_size={batch_size}', 'trainer.stage_steps.coarse=1',
        'trainer.stage_steps.fine=1', 'trainer.export_onnx=false', 'trainer.device=cpu',
        'trainer.threads=1', 'data.val_split=', f'trainer.run_dir={run_dir}'])


def _rank_main(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = run_training(_config(Path(out_dir) / 'run', batch_size=2),
                          dataset=fake_depth_scenes.FakeRooms(size=8), progress=False)
    assert torch.distributed.is_initialized() is False     # the trainer cleaned up
    torch.save(result.method.state_dict()['networks'], Path(out_dir) / f'rank{rank}.pt')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_two_gloo_processes_end_with_identical_weights_equal_to_one_big_batch(tmp_path):
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    single = run_training(_config(tmp_path / 'single', batch_size=4),
                          dataset=fake_depth_scenes.FakeRooms(size=8), progress=False)
    reference = single.method.state_dict()['networks']
    seed_everything(0)      # the trainer's initialisation: the weights before any step
    initial = type(single.method)(single.method.config).state_dict()['networks']
    for net in ('coarse', 'fine'):
        for key, value in ranks[0][net].items():
            assert torch.equal(value, ranks[1][net][key]), f'ranks differ in {net}.{key}'
            assert torch.allclose(value, reference[net][key], atol=1e-6), f'{net}.{key}'
            if key.endswith('weight'):
                assert not torch.equal(value, initial[net][key]), f'{net}.{key} not trained'
    # Only rank 0 writes the run's checkpoint.
    assert (tmp_path / 'run' / 'checkpoints' / 'last.pt').is_file()

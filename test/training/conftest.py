"""Set-up for the training tests: torch on one thread."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Single-threaded torch: these small networks gain nothing from a second thread, and on
    a loaded machine OpenMP's waiting threads cost up to 40x (12 training steps: 4.5 s with
    one thread, 200 s with two while other processes held both cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

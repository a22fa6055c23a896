"""Training losses, one per file, each an nn.Module with its paper equation beside the code."""
from training.losses.scale_invariant import ScaleInvariantLoss  # noqa: F401

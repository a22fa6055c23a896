"""Training, evaluation and export of the depth networks (not part of the installed package)."""

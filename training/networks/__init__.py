"""Network architectures, one per file (the papers' figures and tables in the docstrings)."""

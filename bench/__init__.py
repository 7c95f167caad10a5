"""The copy benchmark: the original scripts' approach vs migrate.py vs a raw-copy ceiling (see run.py)."""

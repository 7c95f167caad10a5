"""The engine of the migration: plan, copy, verify legacy cassio tables."""

__version__ = "1.0.0"  # migrate.py --version

"""The engine of the migration bundle: plan, copy, verify legacy cassio tables."""

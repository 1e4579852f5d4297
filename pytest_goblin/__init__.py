"""pytest-goblin: performance regression tests for fine-tuning workloads."""

__version__ = "0.1.0"

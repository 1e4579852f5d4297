"""Workload file formats, one module each: ``detect``, ``read`` and ``apply``."""

"""Helpers the tests import as modules (``from helpers import workloads``)."""

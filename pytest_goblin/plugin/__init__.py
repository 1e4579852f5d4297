"""The pytest boundary: hooks, the session object, items, settings, hookspecs, xdist.

This is the only package that imports pytest (``tests/unit/test_layout.py`` checks it).
The entry point is :mod:`pytest_goblin.plugin.hooks`.
"""

"""Where the tests' fixed files are, whichever folder a test lives in."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
DATA = TESTS / "data"
EXAMPLE_PROJECT = REPO / "example_project"

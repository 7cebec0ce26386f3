"""tests/comparisons trains several methods at the "small" scale (about 25 min on 2
cores; hours on a loaded machine), so a bare ``pytest tests/comparisons`` must not start it
by accident: its tests run only when asked for by name of their marker
(``-m slow``, or any ``-m`` expression that mentions ``slow``) or when
``UBDIFF_COMPARE_DIR`` names the folder to keep (and resume) the comparison in.
Otherwise each is skipped with a line saying how to run it."""
import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))

SKIP_REASON = ("tests/comparisons trains every method at the small scale (about 25 min on 2 idle cores): "
               "run it with `-m slow` or set UBDIFF_COMPARE_DIR=DIR (kept, and resumed on a rerun)")


def comparisons_requested(markexpr: str, environ=os.environ) -> bool:
    """Whether the small-scale comparison was asked for explicitly."""
    return "slow" in (markexpr or "") or bool(environ.get("UBDIFF_COMPARE_DIR"))


def pytest_collection_modifyitems(config, items):
    if comparisons_requested(config.getoption("markexpr", "")):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:  # this hook sees the whole session's items: only ours are skipped
        if os.path.abspath(str(item.fspath)).startswith(_HERE + os.sep):
            item.add_marker(skip)

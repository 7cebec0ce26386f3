"""Comparisons of UB-Diff with its baselines: the paper's Tables 2-5 and Figs. 5-6.

    import ubdiff
    r = ubdiff.compare.run("cmp/", family="flatvel-a", scale="small")   # or scale="paper"
    r["tables"]["table3"]["rows"]                                        # InversionNet MAE / MSE / SSIM
    ubdiff.compare.registry.names()                                      # the methods

Modules: registry (what a method is, the registered and planned methods),
methods/ (one module per method), scales (sizes and training lengths), split
(the data), samples (generated files), evaluate, tables, figures, runner.
The command line: ``python -m ubdiff compare`` (ubdiff/cli_compare.py).
"""
from . import registry  # noqa: F401
from .runner import run  # noqa: F401

__all__ = ["run", "registry"]

"""The methods of ``python -m ubdiff compare``, one module each (registered in
ubdiff/compare/registry.py); _latent.py holds the training stages the UB-Diff
family shares."""

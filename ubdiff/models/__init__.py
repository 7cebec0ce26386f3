from .inversionnet import InversionNet  # noqa: F401

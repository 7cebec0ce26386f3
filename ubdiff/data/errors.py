"""The one exception type of ubdiff.data."""


class DataError(ValueError):
    """A data file or dataset is unusable; the message names the file and why."""

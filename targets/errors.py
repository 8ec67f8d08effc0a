"""The one exception type the command line turns into a clear message and a non-zero exit."""


class MotivnetError(Exception):
    """A user-facing error: the message names the bad file, field or value."""

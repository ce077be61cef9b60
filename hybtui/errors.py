"""The one exception type users see: a clear message, printed without a traceback."""


class HybtuiError(Exception):
    """Bad input or an unusable environment, explained in words a user can act on."""

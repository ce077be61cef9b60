"""The exception types users see: a clear message, printed without a traceback."""


class HybtuiError(Exception):
    """Bad input or an unusable environment, explained in words a user can act on."""


class StoreError(HybtuiError):
    """The run store cannot be used as asked; the message names the file and the problem."""


class StoreCorrupt(StoreError):
    """``hybtui.db`` is damaged or is not a SQLite database: nothing reads or writes it."""


class StoreTooNew(StoreError):
    """``hybtui.db`` was written by a newer hybtui (a schema version this code does not know)."""


class StoreReadOnly(StoreError):
    """The store can be read but not written (a read-only mount, file or directory)."""


class RunNotFound(HybtuiError):
    """No run (or grid) has this id or id prefix, or the prefix matches several."""


class InvalidTransition(HybtuiError):
    """A run cannot move to the asked status from the one it is in (e.g. resuming a finished run)."""


class UnreadableConfig(HybtuiError):
    """A stored run's configuration is not a JSON object this hybtui can read: it is never trained."""


class SlurmError(HybtuiError):
    """Slurm cannot take a run as asked (no sbatch, an unknown partition, a limit beyond the
    partition's) or did not answer; nothing is recorded."""

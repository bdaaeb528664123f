"""The errors the release chain reports to a person (a bad input, a refused step), and their exit codes.

Tasks catch ReleaseError alone and exit with its message and `exit_code`, without importing each step's heavy
module just to name its error class (google-cloud-aiplatform alone takes ~15 s to import here). Anything else
is a bug and keeps its traceback.

Exit codes of a user-caused stop (like git's own: a script can tell "fix your input" from "go create it"):

====  ===============================================================  =========================
code  meaning                                                          class
====  ===============================================================  =========================
1     a release step cannot go on (a refused build, a failed run)      ReleaseError
2     a bad setting or input: fix invoke.yaml, a variable or a flag    SettingsError, InputError
3     a cloud resource is missing or refused: create it or grant it   MissingResourceError
4     the data cannot be read as the schema says: nothing uploaded     DataError
====  ===============================================================  =========================

Code 4 is the local run's too (`invoke run`: the data check or the data gate stopped it).
"""


class ReleaseError(Exception):
    """A release step cannot go on; the message names the input or state at fault and the fix."""

    exit_code: int = 1


class RecordRefused(ReleaseError):
    """What was read back from the bucket to run (the release record, or before one the newest release there)
    failed a check: its problem in one line; nothing was submitted or written."""


class InputError(ReleaseError, ValueError):
    """A user's input (such as a run's hyperparameters) breaks its rule; the message names it and the fix."""

    exit_code = 2


class MissingResourceError(ReleaseError):
    """A cloud resource (bucket, repository, service account, ...) is missing or access to it is refused."""

    exit_code = 3


class DataError(ReleaseError):
    """The training data breaks the data check (file:line and the fix in the message): nothing was uploaded."""

    exit_code = 4

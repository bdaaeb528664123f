"""Every error the release package reports to a person, grouped by exit code, and the one table of exit codes.

Tasks catch ReleaseError alone and exit with its message and `exit_code` (tasks/_common.guard prints
`Name: message`), without importing each step's heavy module just to name its error class
(google-cloud-aiplatform alone takes ~15 s to import here). Anything else is a bug and keeps its traceback.

A class exists where a caller catches it by name (a test counts), or where its name tells the reader which part
stopped (`BuildError: ...`, `PlanError: ...`); otherwise a step raises the class of its exit code. Cloud calls
reach these classes through one boundary, cicd_release.core.faults.

`EXIT_CODES` is the table: the task docstrings and README point at it, and docs/reliability.md prints it
(`python -m cicd_release.core.errors` writes it; packages/release/tests/test_errors.py checks the two agree).
"""

from __future__ import annotations

import dataclasses


class ReleaseError(Exception):
    """A release step cannot go on; the message names the input or state at fault and the fix."""

    exit_code: int = 1


# ------------------------------------------------------------------------ exit 1: a step failed


class CloudUnavailable(ReleaseError):
    """A Google Cloud API did not answer usefully in time (unreachable, 429/5xx past the deadline, silent), or
    refused the credentials: one line naming the API, the endpoint, the request and what was written."""


class Refused(ReleaseError):
    """A Google Cloud API (or its client, before sending) refused a request: no permission, a bad request, a
    disabled API, a job id taken. Google's own message, in one line."""


class WriteConflict(ReleaseError):
    """A write met other state than it was made for: another writer moved a record or a policy since it was
    read (more often than the caller retries), or an immutable name holds other bytes. Nothing was overwritten."""


class RunFailed(ReleaseError):
    """A submitted run ended FAILED or CANCELLED: the build fails with what the run did."""


class BuildError(ReleaseError):
    """A wheel or the container image could not be built, tagged or pushed; the message carries the cause."""


class GitError(ReleaseError):
    """git failed on what was asked (a missing ref, not a repository, git not installed)."""


class PlanError(ReleaseError):
    """A plan cannot be made: the message names the bad input and the fix."""


class HandOffMissing(ReleaseError):
    """A step needs a file an earlier step writes (.cicd/): the message names the step to run."""


class RehearsalError(ReleaseError):
    """The rehearsal of the compiled spec failed (a task, or a spec that cannot run): one line naming the task
    and the cause; nothing is submitted."""


class RecordRefused(ReleaseError):
    """What was read back from the bucket to run (the release record, or before one the newest release there)
    failed a check: its problem in one line; nothing was submitted or written."""


# ------------------------------------------------------------------------ exit 2: a bad setting or input


class InputError(ReleaseError, ValueError):
    """A user's input (a flag, a path, a run's hyperparameters, a data set's layout) breaks its rule; the
    message names it and the fix."""

    exit_code = 2


class SettingsError(ReleaseError, ValueError):
    """A setting is missing or malformed: the one-line message names it, the rule and how to set it."""

    exit_code = 2


class CompareError(InputError):
    """A ref `invoke compare` was given is not a commit of this clone (the task prints this name)."""


# ------------------------------------------------------------------------ exit 3: missing in the cloud project


class MissingResourceError(ReleaseError):
    """Something a step needs is not in the cloud project (a bucket, data, a released spec, a schedule): create
    it, or run the step that makes it. The message says which."""

    exit_code = 3


class MissingBucket(MissingResourceError):
    """The bucket a call needs does not exist: create it, or fix cicd.bucket or the gs:// path."""


class MissingData(MissingResourceError):
    """No snapshot (or no data at all) where a run looks: the message gives the upload to run."""


class MissingRelease(MissingResourceError):
    """Something a run needs from a release is not there (no release record, spec, module or data): the
    message says how to make it."""


class MissingSchedule(MissingResourceError):
    """No schedule of this pipeline by that name: the message lists the ones there are."""


class ProjectNotReady(MissingResourceError):
    """The project is not as the chain needs it: `invoke doctor` found failed checks, or `invoke setup` found
    something it cannot change (a bucket in another region, a deleted pool, a non-Docker repository)."""


# ------------------------------------------------------------------------ exit 4: bad data


class DataError(ReleaseError):
    """The training data breaks the data check (file:line and the fix in the message): nothing was uploaded."""

    exit_code = 4


# ------------------------------------------------------------------------ exit 5: not blessed


class NotBlessed(ReleaseError):
    """The judge refused the model: nothing was pushed, the last blessed model stays.

    No release step raises it: on Vertex a model that is not blessed is a green build that says so. The code
    is the local run's (`invoke run`, cicd_pipeline.local_session.NOT_BLESSED), which imports nothing from this
    package; it is here so the table has one home, and test_errors.py holds the local run's codes to it.
    """

    exit_code = 5


# ------------------------------------------------------------------------ the table


@dataclasses.dataclass(frozen=True)
class ExitCode:
    code: int
    meaning: str
    where: str
    errors: tuple[type[ReleaseError], ...] = ()


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(
        0, "done: blessed and pushed (a run), or nothing to do (a skip, said with its reason)", "every task"
    ),
    ExitCode(
        1,
        "a step failed: a build, a refused request, a cloud API that did not answer, a run that ended FAILED, "
        "a release record that fails its checks, a local component that failed (its name and the log's last traceback), "
        "a rehearsed task that failed (its name and cause)",
        "every task",
        (
            ReleaseError,
            CloudUnavailable,
            Refused,
            WriteConflict,
            RunFailed,
            BuildError,
            GitError,
            PlanError,
            HandOffMissing,
            RehearsalError,
            RecordRefused,
        ),
    ),
    ExitCode(
        2,
        "a bad setting or input: nothing was built, uploaded or run",
        "every task",
        (InputError, SettingsError, CompareError),
    ),
    ExitCode(
        3,
        "something a step needs is missing in the cloud project (a bucket, data, a released spec, a schedule), "
        "or `doctor` found a failed check",
        "release tasks, `setup`, `doctor`",
        (MissingResourceError, MissingBucket, MissingData, MissingRelease, MissingSchedule, ProjectNotReady),
    ),
    ExitCode(
        4,
        "the data cannot be trained on: the data check or the data gate stopped it before training; nothing "
        "was uploaded",
        "`data.check`, `data.upload` (and the chain's data step); `invoke run` (the components' "
        "`DataGateError`, mapped by `cicd_pipeline.local_session`)",
        (DataError,),
    ),
    ExitCode(
        5,
        "the model was not blessed: nothing was pushed, the last blessed model stays",
        "`invoke run` (`cicd_pipeline.local_session.NOT_BLESSED`: the local run imports nothing from cicd_release)",
        (NotBlessed,),
    ),
)


def markdown_table() -> str:
    """EXIT_CODES as the Markdown table docs/reliability.md prints."""
    rows = ["| exit code | meaning | where | raised as |", "|---|---|---|---|"]
    for entry in EXIT_CODES:
        names = ", ".join(f"`{error.__name__}`" for error in entry.errors) or "-"
        rows.append(f"| {entry.code} | {entry.meaning} | {entry.where} | {names} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")

"""Invoke tasks: the local run and the release chain. `invoke --list` and `invoke --help TASK` are the manual.

One module per namespace, each task a thin face over the packages: it reads the settings (invoke.yaml,
INVOKE_CICD_* variables, flags) once, calls a function of cicd_release or cicd_pipeline, and reports.
cloudbuild.yaml calls these same tasks, and `invoke ci` runs the release package's step table in order.

Exit codes: one table, `cicd_release.core.errors.EXIT_CODES` (docs/reliability.md prints it). A task exits with the
code of the error it stops on (tasks/_common.guard), in one line naming the input and the fix; a traceback is a
bug.
"""

import warnings

from invoke import Collection

# google-api-core warns on every import that Python 3.10 is past its end of life; TFX 1.16 holds us to 3.10
# (docs/platform.md). Said once here instead of forty times per task.
warnings.filterwarnings(
    "ignore", message="You are using a non-supported Python version", category=FutureWarning
)
warnings.filterwarnings("ignore", message="Support for google-cloud-storage < 3.0.0", category=FutureWarning)

from tasks import (  # noqa: E402
    build,
    ci,
    cloud,
    compare,
    data,
    dev,
    local,
    modules,
    pipeline,
    plan,
    rehearse,
    report,
    scaffold,
    schedule,
    settings,
)
from tasks._common import SETTINGS_DEFAULTS, training_defaults  # noqa: E402

pipeline.ns.add_task(rehearse.rehearse)  # pipeline.rehearse: the compiled spec run here first
ns = Collection(
    local.run,
    plan.plan,
    dev.test,
    ci.ci,
    dev.lock,
    build.ns,
    pipeline.ns,
    modules.ns,
    data.ns,
    local.schema,
    schedule.ns,
    settings.ns,
)
ns.add_task(cloud.setup)
ns.add_task(cloud.doctor)
ns.add_task(report.report)
ns.add_task(compare.compare)
ns.add_task(scaffold.init)
# Every setting is declared here so that invoke.yaml and INVOKE_CICD_<NAME> / INVOKE_TRAINING_<NAME> variables
# can set it: invoke maps a variable only onto a key its config already has.
ns.configure({"cicd": SETTINGS_DEFAULTS, "training": training_defaults()})

"""The change-aware plan: which release steps a push needs, worked out from the files it changed.

``make_plan(repo, base, head)`` lists the files that differ between two commits, classifies each path, and
takes the most expensive workflow any path needs (full > pipeline > modules > data > none); a data change
next to a code change adds the data upload to the code's workflow. The chain asks
``needs(plan, step)`` before each step, and ``invoke plan`` prints ``format_table`` or ``Plan.to_json``.

Why each path class needs what it needs (the decisions; packages/release/tests/test_plan.py pins each one):

- ``packages/components/``: executors run inside the container image, so a change needs a new image: full.
- ``packages/pipeline/``: pipeline assembly runs at compile time: recompile and submit, no image.
- ``packages/trainer/``: the compiled pipeline takes the module files' content-addressed gs:// URIs as
  runtime parameters, so a trainer change is upload + submit with the new values: no recompile, no image.
- ``packages/release/``: the release tooling itself (the wheel and image builders, storage, compile, submit).
  It ends up in no artifact, but every artifact is built *through* it, so like the other shared build inputs
  it runs the whole chain: a broken image builder must fail on the push that broke it, not on the next
  components change. Full.
- Paths only propose: ``pipeline`` means "recompile", and the spec is then named by its compiled bytes, so an
  edit that does not change the spec (a docstring in ``report.py``) compiles to the same name and
  ``pipeline.submit`` skips the run (nothing the run consumes changed; see release_state.py).
- A package's ``pyproject.toml`` is part of that package (its version names the artifacts). Its ``tests/``,
  ``CHANGELOG.md`` and ``README`` cannot reach a built artifact: such paths are listed in ``changed_files``
  but the package is *not* in ``changed_packages``, so editing ``packages/trainer/tests/`` starts no run.
- Shared build inputs (``noxfile.py``, ``tasks.py``/``tasks/``, ``invoke.yaml``, ``cloudbuild.yaml``,
  ``requirements/``, ``docker/``, ``.python-version``): every artifact is built through them: full.
- ``.github/``: the trigger and its authentication. It builds no artifact, but a broken trigger should fail on
  the push that broke it, not on the next real change, so it runs the whole chain: full.
- ``.gcloudignore`` decides what Cloud Build receives: full.
- ``.ci/`` and ``.yamllint.yaml``: configuration of the checkers (linters) that the test step runs. The test step always runs, so a
  change there is fully exercised by it: none.
- ``data/<set>/``: the training data. A run trains on a content-addressed snapshot of it in the bucket, so a
  change is checked, uploaded as a new snapshot and trained on: ``data`` (test, data.upload, pipeline.submit,
  schedule.move), with no image and no compile. With a code change too, the code's workflow gains
  ``data.upload``. Files directly in ``data/`` (its README) are docs: none.
- ``tests/``, ``docs/``, Markdown at the root, ``.gitignore`` and the root ``pyproject.toml`` (tool
  configuration only): none (tests only).
- Any other top-level path is unknown: full, with a reason naming it (building too much costs minutes,
  training on stale code costs trust). An unknown path *under* ``packages/`` is an error instead: it means
  the package map below is out of date, and guessing would hide that.
- A base commit that is not in the clone (shallow clone, a mistyped ref, or the all-zero sha GitHub sends
  for a new branch) gives full, said in the reasons. A bad head is an error: there is nothing to build.

The diff is two-tree (``git diff base head``, not ``base...head``): the question is what differs from what
was last built, even after a force-push. ``--no-renames`` lists both sides of a rename, so moving a file out
of a package counts as a change of that package.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from cicd_release.core.errors import PlanError
from cicd_release.core.git import run as _run

# The step vocabulary, in chain order: cloudbuild.yaml's step ids and the keys of the step table (steps.STEPS).
STEPS = (
    "test",
    "build.wheels",
    "build.image",
    "pipeline.compile",
    "pipeline.rehearse",
    "modules.upload",
    "data.upload",
    "pipeline.submit",
    "schedule.move",
)

# pipeline.rehearse follows every compile: a new spec (or image, or components) runs end to end here, in the
# image it names, before Vertex runs it (docs/rehearsal.md).
# modules.upload is idempotent (content-addressed, never overwritten), so every run includes it.
# schedule.move follows every submit: a release that lands new code moves the pipeline's schedules to it.
# data.upload is planned only when data/ changed (or, in the cloud completion, when no snapshot exists):
# a code change must not replace the snapshot a team uploaded from elsewhere with the repository's sample.
WORKFLOW_STEPS = {
    "full": tuple(s for s in STEPS if s != "data.upload"),
    "pipeline": (
        "test",
        "pipeline.compile",
        "pipeline.rehearse",
        "modules.upload",
        "pipeline.submit",
        "schedule.move",
    ),
    "modules": ("test", "modules.upload", "pipeline.submit", "schedule.move"),
    "data": ("test", "data.upload", "pipeline.submit", "schedule.move"),
    "none": ("test",),
}
# Cheapest first: the plan's workflow is the highest rank any changed path needs.
WORKFLOW_RANK = ("none", "data", "modules", "pipeline", "full")
# The steps a data change adds to a code workflow (a data-only change is the `data` workflow itself).
DATA_STEPS = ("data.upload", "pipeline.submit", "schedule.move")

# The package map: each folder under packages/ and the workflow a change to it needs.
PACKAGES = {"components": "full", "pipeline": "pipeline", "release": "full", "trainer": "modules"}
# Files inside a package that cannot reach its built artifact (first path part below the package folder).
PACKAGE_NON_ARTIFACT = ("tests", "CHANGELOG.md", "README.md", "README.rst", "README")

# Top-level paths by their first part. A folder matches everything under it.
SHARED_BUILD_INPUTS = (
    "noxfile.py",
    "tasks.py",
    "tasks",
    "invoke.yaml",
    "cloudbuild.yaml",
    "requirements",
    "docker",
    "Dockerfile",
    ".dockerignore",
    ".python-version",
    ".gcloudignore",
)
CI_TRIGGER = (".github",)
DATA = "data"  # data/<set>/...: the training data sets (files directly in data/ are docs)
NO_RUN = ("tests", "docs", ".ci", ".gitignore", ".yamllint.yaml", "pyproject.toml", "LICENSE")

_ZERO_SHA = "0" * 40


_PACKAGE_WHY = {
    "components": "component executors live in the container image: rebuild the image and all after it",
    "release": "the release tooling builds every artifact: run the whole chain through it",
    "pipeline": "pipeline assembly runs at compile time: recompile, no image",
    "trainer": "module files are runtime parameters of the compiled pipeline: upload, submit, no recompile",
}


@dataclass(frozen=True)
class PathClass:
    """How one changed path counts: the package it changes (or None) and the workflow it needs, and why."""

    package: str | None
    workflow: str
    rule: str


@dataclass(frozen=True)
class Plan:
    """The steps a change needs, with the evidence: files, packages and one reason per decision."""

    base: str | None
    head: str
    changed_files: tuple[str, ...]
    changed_packages: tuple[str, ...]
    workflow: str
    steps: tuple[str, ...]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        """The plan as plain JSON-ready values (lists, not tuples)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    def to_json(self, indent: int | None = 2) -> str:
        """One JSON object with base, head, changed_files, changed_packages, workflow, steps and reasons."""
        return json.dumps(self.to_dict(), indent=indent)


def classify_path(path: str) -> PathClass:
    """Classify one repository-relative POSIX path; raise PlanError for an unknown path under packages/."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute():
        raise PlanError(f"Cannot classify path {path!r}: give a path relative to the repository root.")
    top = parts[0]
    if top == "packages":
        if len(parts) < 3 or parts[1] not in PACKAGES:
            raise PlanError(
                f"Unknown path under packages/: {path!r}. Add its package to PACKAGES in "
                "packages/release/src/cicd_release/plan/changes.py, or move it into one of "
                f"packages/{{{','.join(sorted(PACKAGES))}}}/."
            )
        package = parts[1]
        if parts[2] in PACKAGE_NON_ARTIFACT:
            return PathClass(None, "none", f"packages/{package}/{parts[2]} cannot change a built artifact")
        return PathClass(package, PACKAGES[package], _PACKAGE_WHY[package])
    if top in SHARED_BUILD_INPUTS:
        return PathClass(None, "full", "a shared build input changed: every artifact is built through it")
    if top in CI_TRIGGER:
        return PathClass(None, "full", "the CI trigger changed: the whole chain runs to prove it still works")
    if top == DATA and len(parts) >= 3:
        return PathClass(
            None,
            "data",
            f"the training data data/{parts[1]}/ changed: check it, upload a snapshot and train on it "
            "(no image, no compile)",
        )
    if top == DATA or top in NO_RUN or (len(parts) == 1 and top.lower().endswith((".md", ".rst", ".txt"))):
        return PathClass(None, "none", "docs, tests or tool config cannot affect a Vertex run")
    return PathClass(None, "full", f"unknown top-level path {top!r}: assumed to affect the build, to be safe")


def make_plan(repo_dir: str, base: str | None, head: str = "HEAD", why_missing: str | None = None) -> Plan:
    """Plan the release of ``head`` given that ``base`` was the last commit built (None: nothing known).

    ``why_missing`` says why there is no base, when the caller knows (e.g. no release record yet).
    """
    repo_dir = str(repo_dir)
    _git(repo_dir, "rev-parse", "--git-dir", what=f"{repo_dir!r} is not a git repository: run from the clone")
    head_sha = _resolve(repo_dir, head)
    if head_sha is None:
        raise PlanError(
            f"Head {head!r} is not a commit in {repo_dir}: pass a branch, tag or sha that exists."
        )
    _refuse_links(repo_dir, head_sha)
    base_sha = _resolve(repo_dir, base) if base and base != _ZERO_SHA else None
    if base_sha is None:
        return _missing_base_plan(repo_dir, base, head_sha, why_missing)

    out = _git(
        repo_dir,
        "diff",
        "--name-only",
        "--no-renames",
        "--no-ext-diff",
        "--no-relative",  # Paths from the repository root, whatever diff.relative says.
        "-z",
        base_sha,
        head_sha,
        what=f"Cannot diff {base_sha} against {head_sha}",
    )
    files = tuple(sorted({name for name in out.split("\0") if name}))
    if not files:
        reason = f"No files differ between {base_sha[:12]} and {head_sha[:12]}: tests only."
        return _plan(base_sha, head_sha, files, (), "none", (reason,))

    by_rule: dict[tuple[str | None, str, str], list[str]] = {}
    for name in files:
        cls = classify_path(name)
        by_rule.setdefault((cls.package, cls.workflow, cls.rule), []).append(name)
    workflow = max((key[1] for key in by_rule), key=WORKFLOW_RANK.index)
    packages = tuple(sorted({key[0] for key in by_rule if key[0]}))
    # Most expensive decision first: the first reason explains the workflow.
    ordered = sorted(by_rule.items(), key=lambda item: -WORKFLOW_RANK.index(item[0][1]))
    reasons = tuple(f"{workflow_}: {rule} ({_examples(paths)})." for (_, workflow_, rule), paths in ordered)
    # Data next to code: the code's workflow, plus the upload (and the run that uses both).
    extra = DATA_STEPS if any(key[1] == "data" for key in by_rule) else ()
    return _plan(base_sha, head_sha, files, packages, workflow, reasons, extra)


def needs(plan: Plan, step: str) -> bool:
    """Whether the chain must run ``step`` for this plan; an unknown step name is an error, never a skip."""
    if step not in STEPS:
        raise PlanError(f"Unknown step {step!r}: use one of {', '.join(STEPS)} (cloudbuild.yaml's ids).")
    return step in plan.steps


def format_table(plan: Plan) -> str:
    """A short human summary: commits, workflow, packages, each step run or skipped, and the reasons."""
    rows = [
        ("base", plan.base[:12] if plan.base else "missing"),
        ("head", plan.head[:12]),
        ("files", str(len(plan.changed_files))),
        ("packages", ", ".join(plan.changed_packages) or "-"),
        ("workflow", plan.workflow),
    ]
    rows += [(step, "run" if step in plan.steps else "skip") for step in STEPS]
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    lines += ["why:"] + [f"  - {reason}" for reason in plan.reasons]
    return "\n".join(lines)


def format_markdown(plan: Plan) -> str:
    """The plan for a pull request's job summary: what merging will rebuild and retrain, and why."""
    base = plan.base[:12] if plan.base else "none (everything is built)"
    lines = [
        f"### Release plan: `{plan.workflow}`",
        "",
        f"Base `{base}`, head `{plan.head[:12]}`, {len(plan.changed_files)} changed file(s); packages: "
        f"{', '.join(f'`{p}`' for p in plan.changed_packages) or 'none'}.",
        "",
        "| step | |",
        "|---|---|",
        *[f"| {step} | {'runs' if step in plan.steps else 'skipped'} |" for step in STEPS],
        "",
        "Why:",
        *[f"- {markdown_text(reason)}" for reason in plan.reasons],
    ]
    return "\n".join(lines) + "\n"


# CommonMark lets a backslash escape any ASCII punctuation. Escaped, these cannot open a link or an image
# ([ ] ( ) !), an HTML tag or entity (< > &), emphasis or code (* _ ~ `), a table cell (|), a heading (#) or
# one of GitHub's autolinks (www.x, http://x, a@b.c: . : @).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_~\[\]()<>!|&#.:@])")


def markdown_text(text: str) -> str:
    """`text` (a reason naming changed files) as Markdown that shows it as it is: a file name such as
    `![x](https://attacker.example/t.png)` or `<img src=...>.md` reaches the pull request's summary as text."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", _shown(text))


def _plan(base, head, files, packages, workflow, reasons, extra=()) -> Plan:
    steps = tuple(s for s in STEPS if s in WORKFLOW_STEPS[workflow] or s in extra)
    return Plan(base, head, tuple(files), tuple(packages), workflow, steps, tuple(reasons))


def _missing_base_plan(
    repo_dir: str, base: str | None, head_sha: str, why_missing: str | None = None
) -> Plan:
    """Nothing to diff against: build everything, and say why so nobody wonders where the minutes went."""
    if why_missing:
        why = why_missing
    elif not base:
        why = "no base commit was given"
    elif base == _ZERO_SHA:
        why = f"the base {base} is the all-zero sha (a new branch): there is no previous build"
    else:
        shallow = _git(repo_dir, "rev-parse", "--is-shallow-repository", what="git rev-parse failed").strip()
        hint = " (this clone is shallow: fetch with more depth to plan less)" if shallow == "true" else ""
        why = f"the base {base!r} is not a commit in this clone{hint}"
    reason = f"full: {why}, so every package is treated as changed."
    return _plan(None, head_sha, (), sorted(PACKAGES), "full", (reason,))


# The folders whose files are released as they are, and what a link there would release.
_FILES_ONLY = {
    "packages": "would be released as part of the package",
    DATA: "would be checked, uploaded and trained on as if it were the data",
}


def _refuse_links(repo_dir: str, head_sha: str) -> None:
    """No symlink, submodule or other non-file under packages/ or data/: a link's target (possibly outside the
    repository: /proc/self/environ, a key) would be packed into a wheel or the image, or uploaded to the bucket
    as a data snapshot, as if it were the repository's own file."""
    listing = _git(
        repo_dir, "ls-tree", "-r", "-z", head_sha, "--", *_FILES_ONLY, what="Cannot list packages/ and data/"
    )
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode = meta.split(" ", 1)[0]
        if mode not in ("100644", "100755"):
            kind = {"120000": "a symlink", "160000": "a submodule"}.get(mode, f"mode {mode}")
            top = path.split("/", 1)[0]
            raise PlanError(
                f"{_shown(path)} is {kind}: {top}/ may hold only regular files (whatever it points at "
                f"{_FILES_ONLY[top]}). Replace it with the file itself."
            )


def _resolve(repo_dir: str, ref: str) -> str | None:
    """The full sha of a commit ref, or None when the clone does not hold that commit."""
    # `^{commit}` makes git read the object: a well-formed sha that is absent (shallow clone) fails here.
    result = _run(repo_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    return result.stdout.strip() if result.returncode == 0 else None


def _shown(path: str) -> str:
    """A path as printed: control characters escaped, so a file name cannot forge a line of the plan."""
    return path if path.isprintable() else path.encode("unicode_escape", "backslashreplace").decode("ascii")


def _examples(paths: list[str], limit: int = 3) -> str:
    more = f", +{len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(_shown(p) for p in paths[:limit]) + more


def _git(repo_dir: str, *args: str, what: str) -> str:
    result = _run(repo_dir, *args)
    if result.returncode != 0:
        raise PlanError(f"{what}: git {' '.join(args)} said: {result.stderr.strip()}")
    return result.stdout

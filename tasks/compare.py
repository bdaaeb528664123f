"""`invoke compare BASE HEAD`: what a pull request will train, the base and the head side by side."""

import sys

from invoke import Exit, task

from tasks._common import ROOT, guard

COMPARE_ROOT = ROOT / ".cicd" / "compare"


@task(
    positional=["base", "head"],
    help={
        "base": "The commit the change is compared with, e.g. origin/main.",
        "head": "The commit to compare, e.g. HEAD (its committed state: uncommitted edits are not in it).",
        "markdown": "Print Markdown (for a GitHub job summary) instead of a table.",
        "train_steps": "Training steps for both runs (default: each ref's own training config).",
    },
)
def compare(c, base, head, markdown=False, train_steps=None):
    """Train BASE and HEAD locally, each by its own code on its own shipped data, and show both side by side.

    Each ref runs `invoke run` in a git worktree of its commit (under .cicd/compare/worktrees, removed after),
    from a fresh state (.cicd/compare/base, .cicd/compare/head): no baseline, so blessed or not is each ref's
    own verdict. Prints eval and holdout accuracy (per class too), the verdicts and why, and the release plan;
    the HTML reports are .cicd/compare/base.html and head.html. The table goes to stdout, progress to stderr.

    Exit codes: 0 the table was printed and the head's run reached a verdict (blessed or not) or the data
    gate; 1 the head's run failed (the table says how); 2 a ref is not a commit of this clone.
    """
    from cicd_pipeline.compare import format_markdown, format_text
    from cicd_release.run.compare import compare as compare_refs

    run_args = ["--train-steps", str(int(train_steps))] if train_steps else []
    comparison = guard(
        compare_refs,
        ROOT,
        base,
        head,
        COMPARE_ROOT,
        markdown=markdown,
        run_args=run_args,
        environment=ROOT / "requirements" / "lock.txt",
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_markdown(comparison) if markdown else format_text(comparison), end="")
    if comparison.head.exit_code not in (0, 4, 5):
        raise Exit(
            f"compare: the head's `invoke run` ended with exit {comparison.head.exit_code}: "
            f"its output is {COMPARE_ROOT / 'head.out'}.",
            code=1,
        )

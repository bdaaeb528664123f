"""`invoke init`: a working project for your own CSV data (schema, holdout, module files, training config)."""

from pathlib import Path

from invoke import Exit, task

from tasks._common import ROOT, trainer_files


@task(
    help={
        "data": "A CSV file with a header row (or a folder of CSV files with one header).",
        "label": "The column to predict.",
        "task": "classification or regression (default: from the label: text or a few integers are classes, "
        "other numbers a regression).",
        "name": "The data set's name: data/NAME/, the pipeline NAME-cicd, the model NAME (default: from the "
        "file name).",
        "force": "Replace files that exist (the shipped penguins' trainer files and invoke.yaml's training: "
        "block the first time): `git diff` shows every change.",
    }
)
def init(c, data, label, task=None, name=None, force=False):
    """Write a working project for a CSV and a label column: the curated schema, a fixed holdout taken out of
    the data, preprocessing_fn and run_fn for the column types, the training config. Then `invoke run`.

    The data check's rules run first (a bad file stops it with file:line, exit 4). Columns that would mislead
    a model (identifier-like, constant, mostly empty) are named with what init did; a label it cannot learn
    stops it (exit 2). Nothing is replaced without --force; --dry prints what would be written.
    """
    from cicd_pipeline.init.project import InitError, analyse, check_name, default_name, read_table
    from cicd_pipeline.init.write import Layout, check_source, check_targets, describe, files_for, write

    source = Path(data)
    report = check_source(source)
    if not report.ok:
        raise Exit(report.format() + "\nNothing was written. Fix the files above and run again.", code=4)
    layout = Layout(ROOT, trainer_files())
    try:
        dataset = check_name(name or default_name(source))
        project = analyse(read_table(source), label, task, dataset, source=source.name)
        files = files_for(project, layout)
        replaced = check_targets(files, source, layout, dataset)
    except InitError as err:
        raise Exit(f"init: {err}", code=2) from None
    if replaced and not force:
        shown = ", ".join(str(p.relative_to(ROOT)) for p in replaced)
        raise Exit(
            f"init: would replace {shown}: pass --force to write them (`git diff` shows every change, and "
            "`git checkout -- .` brings back what was there).",
            code=2,
        )
    removed = layout.replaced_tests()
    lines = describe(project, files, layout, removed)
    if c.config.run.dry:
        print("\n".join(["(--dry: nothing written)", *lines]))
        return
    write(files, removed)
    print("\n".join(lines))

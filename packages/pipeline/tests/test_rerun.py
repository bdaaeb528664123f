"""Why a component ran instead of reusing its cached result: the first difference from its last execution."""

from mlmd_writer import PIPELINE_NAME

from cicd_pipeline.rerun import abbreviate_change, why_it_ran
from cicd_pipeline.run_record import RESOLVER_TYPE, latest_run, open_store

WHEEL = "preprocessing@/state/pipeline_root/_wheels/tfx_user_code_transform-0.0+{}-py3-none-any.whl"


def this_run(store):
    _, executions = latest_run(open_store(store.path), PIPELINE_NAME)
    return {e.node: e for e in executions}


def reasons(store, node):
    return why_it_ran(open_store(store.path), PIPELINE_NAME, this_run(store)[node])


def test_an_edited_module_file_is_named_with_the_part_of_its_wheel_that_changed(mlmd_store):
    examples = mlmd_store.artifact()
    first = mlmd_store.run("r1")
    mlmd_store.execute(
        first, "Transform", inputs={"examples": [examples]}, module_path=WHEEL.format("f13870ac32")
    )
    second = mlmd_store.run("r2")
    mlmd_store.execute(
        second, "Transform", inputs={"examples": [examples]}, module_path=WHEEL.format("0a1b2c3d4e")
    )
    assert reasons(mlmd_store, "Transform") == [
        "module file (module_path) changed: '…orm-0.0+f13870ac32-py3-non…' → '…orm-0.0+0a1b2c3d4e-py3-non…'"
    ]


def test_a_new_upstream_artifact_names_the_input_and_who_made_it(mlmd_store):
    first_run, second_run = mlmd_store.run("r1"), mlmd_store.run("r2")
    old_blessing, new_blessing = mlmd_store.artifact("ModelBlessing"), mlmd_store.artifact("ModelBlessing")
    model = mlmd_store.artifact("Model")
    mlmd_store.execute(first_run, "Trainer", outputs={"model": [model]})
    mlmd_store.execute(first_run, "Evaluator", outputs={"blessing": [old_blessing]})
    mlmd_store.execute(first_run, "Pusher", inputs={"model": [model], "model_blessing": [old_blessing]})
    mlmd_store.execute(second_run, "Trainer", "CACHED", outputs={"model": [model]})
    mlmd_store.execute(
        second_run,
        "Evaluator",
        inputs={"model": [model], "baseline_model": [model]},
        outputs={"blessing": [new_blessing]},
    )
    mlmd_store.execute(second_run, "Pusher", inputs={"model": [model], "model_blessing": [new_blessing]})
    assert reasons(mlmd_store, "Pusher") == ["input model_blessing changed: a new one from Evaluator"]
    # The cached Trainer re-links the model; the Trainer that made it is named, not the cache hit.
    assert reasons(mlmd_store, "Evaluator") == [
        "input baseline_model is new: from Trainer (none before)",
        "input model is new: from Trainer (none before)",
    ]
    assert reasons(mlmd_store, "Trainer") == []  # a cache hit needs no reason


def test_parameters_come_before_inputs_and_the_previous_one_is_the_last_that_ran(mlmd_store):
    data_v1, data_v2 = mlmd_store.artifact(), mlmd_store.artifact()
    mlmd_store.execute(mlmd_store.run("r1"), "Trainer", inputs={"examples": [data_v1]}, train_args="100")
    mlmd_store.execute(
        mlmd_store.run("r2"), "Trainer", "FAILED", inputs={"examples": [data_v2]}, train_args="1"
    )
    mlmd_store.execute(mlmd_store.run("r3"), "Trainer", inputs={"examples": [data_v2]}, train_args="200")
    assert reasons(mlmd_store, "Trainer") == [
        "train_args changed: '100' → '200'",  # against r1 (the last that ran), not the failed r2
        "input examples changed: a new artifact",
    ]


def test_a_first_run_a_resolver_and_an_unexplained_rerun(mlmd_store):
    mlmd_store.execute(mlmd_store.run("r1"), "Pusher", push_destination="/serving")
    assert reasons(mlmd_store, "Pusher") == ["its first run in this state folder"]
    run = mlmd_store.run("r2")
    mlmd_store.execute(run, "Pusher", push_destination="/serving")
    mlmd_store.execute(run, "latest_blessed_model_resolver", type_name=RESOLVER_TYPE)
    assert reasons(mlmd_store, "latest_blessed_model_resolver") == [
        "a resolver: it looks for its artifacts on every run"
    ]
    assert "inputs and parameters as last time" in reasons(mlmd_store, "Pusher")[0]


def test_a_change_is_shown_with_a_few_characters_around_it():
    assert abbreviate_change("abc", "abd") == "'abc' → 'abd'"
    assert abbreviate_change("x" * 40 + "1" + "y" * 40, "x" * 40 + "2" + "y" * 40) == (
        "'…xxxxxxxx1yyyyyyyy…' → '…xxxxxxxx2yyyyyyyy…'"
    )
    long_old, long_new = "p/" + "a" * 50, "p/" + "b" * 50
    assert abbreviate_change(long_old, long_new) == f"'p/{'a' * 24}…' → 'p/{'b' * 24}…'"
    assert abbreviate_change("", "new") == "'' → 'new'"

"""On a failure the terminal gets the lines of the run's log that say why, bounded, and the log's path."""

from cicd_pipeline.logtail import LIMIT, append_traceback, failure_message, lines_that_matter

CHATTER = [
    "2026-01-02 03:04:05.678901: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable to register",
    "2026-01-02 03:04:06,100 INFO absl: Component Transform is running.",
    "Processing /state/pipeline_root/_wheels/tfx_user_code_transform-0.0+abc-py3-none-any.whl",
    "2026-01-02 03:04:07,100 WARNING tensorflow: From x.py:1: deprecated",
]


def write(tmp_path, lines):
    path = tmp_path / "run.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_last_traceback_is_what_matters(tmp_path):
    traceback = [
        "Traceback (most recent call last):",
        '  File "preprocessing.py", line 12, in preprocessing_fn',
        "    return outputs[KEY]",
        "KeyError: 'bill_lenght_mm'",
    ]
    earlier = ["Traceback (most recent call last):", '  File "old.py"', "ValueError: an earlier one"]
    path = write(
        tmp_path,
        [*CHATTER, *earlier, "2026-01-02 03:04:08,100 ERROR absl: Transform failed", *traceback, *CHATTER],
    )
    assert lines_that_matter(path) == traceback


def test_a_long_traceback_keeps_its_head_and_its_end(tmp_path):
    frames = [f'  File "f{i}.py", line {i}, in f' for i in range(60)]
    path = write(tmp_path, ["Traceback (most recent call last):", *frames, "RuntimeError: deep"])
    shown = lines_that_matter(path)
    assert len(shown) == LIMIT
    assert shown[0] == "Traceback (most recent call last):"
    assert "lines more in the log" in shown[1]
    assert shown[-2:] == [frames[-1], "RuntimeError: deep"]


def test_without_a_traceback_the_last_error_record_with_its_lines(tmp_path):
    path = write(
        tmp_path,
        [
            "2026-01-02 03:04:05,000 ERROR absl: an old error",
            *CHATTER,
            "2026-01-02 03:04:09,000 ERROR tfx.orchestration: Executor failed:",
            "  the schema has no feature species",
            *CHATTER[1:2],
        ],
    )
    assert lines_that_matter(path) == [
        "2026-01-02 03:04:09,000 ERROR tfx.orchestration: Executor failed:",
        "  the schema has no feature species",
    ]


def test_otherwise_the_last_lines_and_nothing_for_a_missing_log(tmp_path):
    path = write(tmp_path, [f"line {i}" for i in range(100)])
    assert lines_that_matter(path, limit=5)[-1] == "line 99"
    assert len(lines_that_matter(path, limit=5)) == 5
    assert lines_that_matter(tmp_path / "missing.log") == []


def test_the_failure_message_names_the_component_the_cause_and_the_log(tmp_path):
    path = write(tmp_path, CHATTER)
    try:
        raise ValueError("module_file has no preprocessing_fn")
    except ValueError as err:
        append_traceback(path, err)
    message = failure_message(path, "Transform")
    assert message.startswith("The run failed in Transform.")
    assert "    ValueError: module_file has no preprocessing_fn" in message
    assert "cuda" not in message and "deprecated" not in message
    assert message.endswith(f"Full log: {path}")
    assert len(message.splitlines()) <= LIMIT + 2

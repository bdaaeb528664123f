"""Judge: the Evaluator, also scoring candidate and baseline on a fixed holdout set, with one blessing."""

"""What every layer stands on: the settings model and its rules, errors and the fault boundary, git, `.cicd/`."""

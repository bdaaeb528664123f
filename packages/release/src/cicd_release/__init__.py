"""How the pipeline ships, in layers a folder each (docs/release-chain.md, "Where the code is"):

- ``core``: what every layer stands on: the settings model and its rules, the errors and the fault boundary,
  git, and the ``.cicd/`` hand-off files;
- ``plan``: what a push needs: from the paths it changed (``changes``) and from the last release (``release_state``);
- ``artifacts``: what a release is built into, and the names they carry: wheels, the image, the compiled spec;
- ``publish``: immutable objects in the bucket: modules, specs and data snapshots;
- ``run``: runs on Vertex AI and here: the submit, its outcome, schedules, the rehearsal and the compare;
- ``provision``: the Google Cloud project a release needs (``invoke setup``, ``invoke doctor``);
- ``steps``: the chain itself, the one table of steps over the layers that ``invoke ci``, the ``invoke``
  tasks and cloudbuild.yaml follow.

Nothing here reads the environment at import time; the ``invoke`` tasks (tasks/) read settings and call in.
"""

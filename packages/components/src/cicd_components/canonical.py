"""One spelling of a JSON value, for what is named, compared or cached by its bytes.

Keys are always sorted. Two spacings are in use, and each is pinned by what was already made with it, so every
caller says which it means (`spaced` has no default):
- compact, `,` and `:` (spaced=False): compiled specs' digests, hence the spec names in the bucket
  (cicd_release.artifacts.naming.spec_digest);
- json's default `, ` and `: ` (spaced=True): hyperparameters, which travel as run parameters compared with the
  release record, sit in compiled specs as defaults, and key TFX's cache locally (the HyperparametersGen's
  values and its `known` table).
Moving either would rename every spec, or re-run a release and miss every cache, for no change of content.
"""

import json

_COMPACT = (",", ":")
_SPACED = (", ", ": ")


def canonical_json(data: object, *, spaced: bool) -> str:
    """`data` as JSON with sorted keys, compact or spaced (see the module's docstring for which is whose)."""
    return json.dumps(data, sort_keys=True, separators=_SPACED if spaced else _COMPACT)

"""The base of every error the release chain reports to a person (a bad input, a refused step).

Tasks catch this one class and print the message, without importing each step's heavy module just to
name its error class (google-cloud-aiplatform alone takes ~15 s to import here).
"""


class ReleaseError(Exception):
    """A release step cannot go on; the message names the input or state at fault and the fix."""

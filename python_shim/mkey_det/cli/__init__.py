"""The Python half of the ``mkey-det`` command-line tool (the Node program); MMDetection never
imports it.

* ``bridge``: the named entry points Node calls in-process through pythonia (``ENTRIES``).
* ``runs``: checks before a training or test launch (preflight, checkpoint fit, config summary).
* ``report_tools``: run identity from configs (a bridge entry) and, run by file path, the PNG plots.
* ``doctor``: the environment report, run by file path so it works when the package cannot be
  imported.
* ``launch_guard``: ``python .../mkey_det/cli/launch_guard.py`` (by file path), which ends a training run when the
  CLI that supervises it dies.

Nothing is imported here: ``doctor.py`` and ``report_tools.py`` also run as plain scripts.
"""

"""``python -m mkey_det.analysis``: the parameter / FLOP table (:func:`.complexity.main`)."""
from .complexity import main

main()

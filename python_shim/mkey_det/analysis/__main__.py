"""``python -m mkey_det.analysis``: the Swin-T parameter / FLOP table; ``python -m
mkey_det.analysis table1 [--json]``: the paper's Table 1 / 2 (:func:`.complexity.main`)."""
from .complexity import main

main()

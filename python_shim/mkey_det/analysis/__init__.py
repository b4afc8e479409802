"""What a backbone is made of, measured: parameters and FLOPs (:mod:`.complexity`) and the
query-key interaction of its attention (:mod:`.qk`)."""
from .complexity import (PAPER_TABLE1, SWIN_T, backbone_complexity, build_swin_t, complexity_table,
                         count_complexity)

__all__ = ['PAPER_TABLE1', 'SWIN_T', 'backbone_complexity', 'build_swin_t', 'complexity_table',
           'count_complexity']

"""Training-time pieces registered into MMDetection: the progress hook."""
from .progress_hook import MkeyProgressHook

__all__ = ['MkeyProgressHook']

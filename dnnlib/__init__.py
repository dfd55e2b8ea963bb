"""Small utilities shared by every part of the project (NVIDIA-compatible names)."""
from . import util
from .util import EasyDict, make_cache_dir_path  # noqa: F401

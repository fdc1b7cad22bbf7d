"""Small shared helpers: atomic file writing, progress bars, cache location, YAML configs."""

from jetlab.utils.atomic import (
    atomic_path,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
)
from jetlab.utils.cache import cache_dir
from jetlab.utils.config import config_from_dict, load_config, save_config
from jetlab.utils.progress import progress

__all__ = [
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_json",
    "atomic_write_text",
    "cache_dir",
    "config_from_dict",
    "load_config",
    "progress",
    "save_config",
]

"""What every builder hands to the writer: a list of items plus the data set's metadata."""
import dataclasses
from typing import Callable, Iterator, List, Optional

#----------------------------------------------------------------------------

@dataclasses.dataclass
class Item:
    """One image to write. `load()` returns a PIL image or a uint8 HWC/HW array."""
    name: str                           # shown in error messages (a path inside the source)
    load: Callable                      # decode on demand, so big sources stream
    label: Optional[object] = None      # int domain label, or whatever a pass-through source holds
    factors: Optional[list] = None      # ground-truth factor values, aligned with Source.factor_names

#----------------------------------------------------------------------------

@dataclasses.dataclass
class Source:
    """A data set to convert: items in output order and what describes them."""
    items: Callable[[], Iterator[Item]] # iterate the items (called once)
    num_items: int
    channels: int                       # 1 (grayscale) or 3 (RGB): every image is converted to this
    domains: Optional[List[str]] = None # label -> name
    factor_names: Optional[List[str]] = None
    sizes: Optional[dict] = None        # {(width, height): first item name} when known before decoding
    native_resolution: Optional[int] = None # output size when the user gives none (builtin, MNIST)
    crop: Optional[Callable] = None     # PIL image -> square PIL image, used when --transform is not given
    extra: dict = dataclasses.field(default_factory=dict) # more keys for dataset.json

#----------------------------------------------------------------------------

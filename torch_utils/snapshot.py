"""Our snapshot format: a torch.save zip read back only with torch.load(weights_only=True).

File `network-snapshot-NNNNNN.pt` holds a dict
    {'format': 'cggan-snapshot', 'version': 1,
     <name>: {'record': 'module', 'class_name', 'init_kwargs', 'state_dict', 'training'},  # per module
     <name>: any weights-only-safe data (optimizer state dicts, counters, RNG states, options)}.
Modules are rebuilt only under the keys G, G_ema, D and augment_pipe, each from the exact class names
torch_utils/allowlist.py lists for its slot, with plain bounded kwargs; the zip is checked (entries
stored, sizes within the file) before torch.load, and its contents bounded before anything walks them.
"""
import collections
import io
import os
import zipfile

import numpy as np
import torch

import dnnlib
from torch_utils import allowlist
from torch_utils import persistence

FORMAT = 'cggan-snapshot'
VERSION = 1
MODULE_SLOTS = {'G': 'G', 'G_ema': 'G', 'D': 'D', 'augment_pipe': 'augment_pipe'}  # key -> allowlist slot
ZIP_MAGIC = b'PK\x03\x04'

#----------------------------------------------------------------------------

class SnapshotError(ValueError):
    """A snapshot cannot be written or read; the message says what to do."""

#----------------------------------------------------------------------------

def to_plain(obj, where: str = 'data'):
    """Convert to data torch.load(weights_only=True) accepts: EasyDict -> dict, numpy -> tensor/python."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, torch.Size):
        return torch.Size(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, to_plain(v, f'{where}[{k!r}]')) for k, v in obj.items())
    if isinstance(obj, dict):  # also EasyDict and other dict subclasses
        return {k: to_plain(v, f'{where}[{k!r}]') for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, f'{where}[{i}]') for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise SnapshotError(f'cannot save {where}: {type(obj).__module__}.{type(obj).__qualname__} is not plain data; '
                        f'convert it to tensors, numbers, strings, lists or dicts first.')


def _to_easydict(obj):
    if isinstance(obj, dict) and not isinstance(obj, collections.OrderedDict):
        return dnnlib.EasyDict({k: _to_easydict(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_to_easydict(v) for v in obj]
    return obj

#----------------------------------------------------------------------------

def is_module_record(obj) -> bool:
    return isinstance(obj, dict) and obj.get('record') == 'module' and 'class_name' in obj and 'state_dict' in obj


def module_to_record(module: torch.nn.Module) -> dict:
    """{'record': 'module', 'class_name', 'init_kwargs', 'state_dict', 'training'} of a @persistent_class module."""
    try:
        spec = persistence.module_spec(module)
    except TypeError as e:
        raise SnapshotError(f'cannot save {type(module).__qualname__}: {e}; decorate it with @persistence.persistent_class.') from None
    state = collections.OrderedDict((k, v.detach().cpu()) for k, v in module.state_dict().items())
    return dict(record='module', class_name=spec['class_name'], init_kwargs=to_plain(spec['init_kwargs'], f'{spec["class_name"]} init_kwargs'),
                state_dict=state, training=bool(module.training))


def record_spec(record: dict, slot: str = 'G', where: str = 'snapshot') -> dict:
    """The checked {'class_name', **init_kwargs} of a module record (allow-listed class of `slot`, plain
    bounded kwargs, a dict of named tensors, a bool training flag); raises SnapshotError."""
    kwargs, state, training = record.get('init_kwargs'), record.get('state_dict'), record.get('training', False)
    if kwargs is None:
        kwargs = {}
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise SnapshotError(f'{where}: its state_dict is {allowlist.brief(state)}, not a dict of named tensors; the file is corrupt.')
    if not isinstance(training, bool):
        raise SnapshotError(f'{where}: "training" is {allowlist.brief(training)}, not true or false; the file is corrupt.')
    if not isinstance(kwargs, dict):
        raise SnapshotError(f'{where}: init_kwargs is {allowlist.brief(kwargs)}, not a dict; the file is corrupt.')
    spec = dict(_to_easydict(dict(kwargs)), class_name=record.get('class_name'))
    try:
        allowlist.check_spec(slot, spec, where)
    except allowlist.RefusedError as e:
        raise SnapshotError(str(e)) from None
    return spec


def module_from_record(record: dict, device='cpu', slot: str = 'G', where: str = 'snapshot') -> torch.nn.Module:
    """Rebuild a module from its record: an allow-listed class of `slot`, then the state dict loaded strictly."""
    spec = record_spec(record, slot, where)
    try:
        module = allowlist.construct(slot, spec, where)
    except allowlist.RefusedError as e:
        raise SnapshotError(str(e)) from None
    load_state_checked(module, record['state_dict'], spec['class_name'])
    module.train(record.get('training', False))
    return module.to(device)


def load_state_checked(module: torch.nn.Module, state_dict: dict, what: str):
    """load_state_dict(strict) with one clear sentence on missing/unexpected keys or shape mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'missing {len(missing)} tensors (e.g. {", ".join(missing[:3])})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected tensors (e.g. {", ".join(unexpected[:3])})')
        raise SnapshotError(f'the weights stored for {what} do not fit the network built from its settings: '
                            f'{"; ".join(parts)}.')
    for k, v in own.items():
        if tuple(state_dict[k].shape) != tuple(v.shape):
            raise SnapshotError(f'the weights stored for {what} do not fit the network built from its settings: '
                                f'{k} has shape {tuple(state_dict[k].shape)}, expected {tuple(v.shape)}.')
    module.load_state_dict(state_dict, strict=True)

#----------------------------------------------------------------------------

def _encode(obj, where):
    if isinstance(obj, torch.nn.Module):
        return module_to_record(obj)
    if isinstance(obj, dict) and not isinstance(obj, collections.OrderedDict):
        return {k: _encode(v, f'{where}[{k!r}]') for k, v in obj.items()}
    return to_plain(obj, where)


def _decode(key, obj, device, rebuild_modules, name):
    if is_module_record(obj) and rebuild_modules:
        if key not in MODULE_SLOTS:
            raise SnapshotError(f'{name}: "{key}" holds a network record, which only {", ".join(MODULE_SLOTS)} may; refusing to build it.')
        return module_from_record(obj, device, MODULE_SLOTS[key], f'{name}: {key}')
    return obj


def check_records(data: dict, name: str):
    """For data read with rebuild_modules=False: every module record is one that would be built (its key,
    allow-listed class, kwargs, state), so a later rebuild cannot fail on the file; raises SnapshotError."""
    for key, obj in data.items():
        if is_module_record(obj):
            if key not in MODULE_SLOTS:
                raise SnapshotError(f'{name}: "{key}" holds a network record, which only {", ".join(MODULE_SLOTS)} may; refusing to build it.')
            record_spec(obj, MODULE_SLOTS[key], f'{name}: {key}')


def save_snapshot(path: str, data: dict):
    """Write `data` (modules become records) atomically: temp file in the same folder, fsync, os.replace."""
    if not isinstance(data, dict):
        raise SnapshotError('save_snapshot expects a dict of named items.')
    for key in ('format', 'version'):
        if key in data:
            raise SnapshotError(f'"{key}" is reserved in snapshots; use another name.')
    payload = dict(format=FORMAT, version=VERSION)
    payload.update(_encode(dict(data), 'data'))
    with dnnlib.util.atomic_write(path, durable=True) as f:
        torch.save(payload, f)

#----------------------------------------------------------------------------

def is_torch_zip(f) -> bool:
    """Whether an open binary file (position kept) is a torch.save zip: zip magic + a */data.pkl entry."""
    pos = f.tell()
    try:
        if f.read(4) != ZIP_MAGIC:
            return False
        f.seek(pos)
        with zipfile.ZipFile(f) as z:
            return any(n.endswith('data.pkl') and n.count('/') == 1 for n in z.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return True  # zip magic but unreadable: most likely a truncated snapshot, let the loader say so
    finally:
        f.seek(pos)


def load_snapshot(path_or_file, device='cpu', rebuild_modules: bool = True) -> dict:
    """Read a snapshot with torch.load(weights_only=True); rebuild module records into our modules."""
    name = path_or_file if isinstance(path_or_file, (str, os.PathLike)) else getattr(path_or_file, 'name', '<stream>')
    if isinstance(path_or_file, (str, os.PathLike)):
        if not os.path.isfile(path_or_file):
            raise SnapshotError(f'snapshot not found: {path_or_file}; check the path.')
        with open(path_or_file, 'rb') as f:
            return load_snapshot(f, device=device, rebuild_modules=rebuild_modules)
    f = path_or_file
    if not f.seekable():
        f = io.BytesIO(f.read())
    if f.read(4) != ZIP_MAGIC:
        raise SnapshotError(f'{name} is not a snapshot written by this code (no torch zip header).')
    f.seek(0)
    from torch_utils import safe_pickle
    try:
        allowlist.check_zip(f, str(name))
        safe_pickle.prescan_torch_zip(f, str(name))  # bounds and opcode rules before torch.load allocates anything
    except allowlist.RefusedError as e:
        raise SnapshotError(str(e)) from None
    except safe_pickle.UnsafePickleError as e:
        raise SnapshotError(str(e)) from None
    except Exception as e:  # truncated or corrupt pickle
        raise SnapshotError(f'cannot read {name}: the file is truncated, corrupt or not a snapshot ({type(e).__name__}: {str(e)[:160]}).') from None
    try:
        data = torch.load(f, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zips, foreign zips, pickles with non-weights globals
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SnapshotError(f'cannot read {name}: the file is truncated, corrupt or not a snapshot ({reason[:200]}).') from None
    try:
        allowlist.check_data(data, str(name), leaves=(torch.Tensor, torch.dtype, torch.device))
    except allowlist.RefusedError as e:
        raise SnapshotError(str(e)) from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise SnapshotError(f'{name} is a torch file but not a {FORMAT} (it holds {type(data).__name__}'
                            f'{" with keys " + ", ".join(allowlist.brief(k) for k in list(data)[:5]) if isinstance(data, dict) else ""}).')
    version = data.get('version')
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SnapshotError(f'{name} has snapshot version {allowlist.brief(version)}, which is not a version number; the file is corrupt.')
    if version > VERSION:
        raise SnapshotError(f'{name} has snapshot version {version}, newer than this code reads ({VERSION}); update the code.')
    return {k: _decode(k, v, device, rebuild_modules, name) for k, v in data.items()}

#----------------------------------------------------------------------------

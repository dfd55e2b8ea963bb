"""Read network snapshots: NVIDIA StyleGAN2-ADA pickles, i-StyleGAN (dill) pickles and our own .pt format;
convert between the formats (`python legacy.py --source=run.pt --dest=run.pkl`, and back; see --help).

    with dnnlib.util.open_url(path_or_url) as f:
        G = legacy.load_network_pkl(f)['G_ema']

Pickles are read with `torch_utils.safe_pickle` (nothing in the file is executed) and their contents
bounded (torch_utils/allowlist.py); the networks are rebuilt as *our* classes, mapped from the stored
class name and built from allow-listed, plain constructor kwargs, and the stored tensors are loaded with
a completeness check.
"""
import copy
import inspect
import io
import os
import pickle
import warnings

import click
import torch

import numpy as np

import dnnlib
from torch_utils import allowlist
from torch_utils import pickle_policy, safe_pickle
from torch_utils import snapshot

#----------------------------------------------------------------------------

class LegacyError(ValueError):
    """A file is not a network snapshot we can read; the message says what to do."""

# NVIDIA class names (persistent objects store only the unqualified name) -> our classes.
CLASS_MAP = {
    'Generator':        'training.networks.Generator',
    'Discriminator':    'training.networks.Discriminator',
    'MappingNetwork':   'training.networks.MappingNetwork',
    'SynthesisNetwork': 'training.networks.SynthesisNetwork',
    'AugmentPipe':      'training.augment.AugmentPipe',
}
CLASS_SLOT = {'Generator': 'G', 'Discriminator': 'D', 'MappingNetwork': 'mapping', 'SynthesisNetwork': 'synthesis',
              'AugmentPipe': 'augment_pipe'}
# What each top-level key of a snapshot must hold, when it holds a network.
KEY_SLOT = {'G': 'G', 'G_ema': 'G', 'D': 'D', 'augment_pipe': 'augment_pipe'}

# Constructor kwargs that only i-StyleGAN's MappingNetwork has.
ISTYLEGAN_MAPPING_KWARGS = ('cond_mode', 'i_dim', 'flow_blocks', 'flow_dim', 'flow_norm', 'use_label')

PICKLE_PROTOCOL_BYTES = (b'\x80',)  # protocol 2+ header

#----------------------------------------------------------------------------

def load_network_pkl(f, force_fp16: bool = False) -> dict:
    """Read a network snapshot from an open binary file; returns {G, D, G_ema, augment_pipe, training_set_kwargs, ...}."""
    name = getattr(f, 'name', None) or '<stream>'
    if not hasattr(f, 'seekable') or not f.seekable():
        f = io.BytesIO(f.read())
    start = f.tell()
    head = f.read(512)
    f.seek(start)
    if not head:
        raise LegacyError(f'{name} is empty; it is not a network snapshot.')

    # (c) Our own format (torch.save zip) -- or some other zip.
    if head.startswith(snapshot.ZIP_MAGIC):
        if not snapshot.is_torch_zip(f):
            raise LegacyError(f'{name} is a zip archive but not a network snapshot (a dataset?); pass a '
                              f'network-snapshot-*.pt or *.pkl file.')
        try:
            data = snapshot.load_snapshot(f)
        except snapshot.SnapshotError as e:
            raise LegacyError(str(e)) from None
        data = _check_networks(data, name)

    # (a, b) NVIDIA / i-StyleGAN pickles.
    elif head[:1] in PICKLE_PROTOCOL_BYTES:
        try:
            raw = safe_pickle.safe_load(f, source=name)
        except safe_pickle.UnsafePickleError:
            raise
        except Exception as e:  # truncated or corrupt pickles
            raise LegacyError(f'cannot read {name}: the pickle is truncated or corrupt ({type(e).__name__}: {str(e)[:120]}).') from None
        try:
            allowlist.check_data(raw, name, leaves=_PICKLE_LEAVES, expand=_record_children)
        except allowlist.RefusedError as e:
            raise LegacyError(str(e)) from None
        data = convert_pickle_data(raw, name)

    else:
        kind = 'a text file' if _looks_like_text(head) else 'an unknown binary format'
        raise LegacyError(f'{name} is {kind}, not a network snapshot; pass a network-snapshot-*.pkl (NVIDIA, i-StyleGAN) or *.pt (ours) file.')

    if force_fp16:
        data = _force_fp16(data)
    return data


def load_network(path_or_url, force_fp16: bool = False, device=None) -> dict:
    """Convenience: open a path or URL (cached download) and read it with load_network_pkl."""
    with dnnlib.util.open_url(path_or_url) as f:
        data = load_network_pkl(f, force_fp16=force_fp16)
    if device is not None:
        for key, value in data.items():
            if isinstance(value, torch.nn.Module):
                data[key] = value.to(device)
    return data


_PICKLE_LEAVES = (torch.Tensor, np.ndarray, np.generic, np.dtype, torch.dtype, torch.device, complex, slice, bytearray, pickle_policy.Inert)


def _record_children(obj):
    return obj.state if isinstance(obj, pickle_policy._StateRecord) else None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in '\t\r\n' for ch in text)

#----------------------------------------------------------------------------

def _check_networks(data, name) -> dict:
    if not isinstance(data, dict) or not any(k in data for k in ('G', 'D', 'G_ema')):
        what = f'a dict with keys {", ".join(map(str, list(data)[:6]))}' if isinstance(data, dict) else type(data).__name__
        raise LegacyError(f'{name} holds {what}, not networks G, D, G_ema; pass a network snapshot.')
    data = dict(data)
    data.setdefault('training_set_kwargs', None)
    data.setdefault('augment_pipe', None)
    for key, slot in KEY_SLOT.items():
        data.setdefault(key, None)
        want = allowlist.get_class(slot, allowlist.SLOTS[slot][0])
        if data[key] is not None and type(data[key]) is not want:
            raise LegacyError(f'{name}: "{key}" is {allowlist.brief(data[key])}, not a {want.__name__}.')
    kwargs = data['training_set_kwargs']
    if kwargs is not None:
        spec = dict(kwargs) if isinstance(kwargs, dict) else kwargs
        if isinstance(spec, dict):
            spec.setdefault('class_name', allowlist.SLOTS['dataset'][0])
        try:
            allowlist.check_spec('dataset', spec, f'{name}: training_set_kwargs')
        except allowlist.RefusedError as e:
            raise LegacyError(str(e)) from None
        data['training_set_kwargs'] = dnnlib.EasyDict(kwargs)
    return data


def convert_pickle_data(raw, name: str = '<stream>') -> dict:
    """Turn the plain-data result of safe_pickle (records in place of networks) into our modules."""
    if not isinstance(raw, dict) or not any(k in raw for k in ('G', 'D', 'G_ema')):
        what = f'a dict with keys {", ".join(map(str, list(raw)[:6]))}' if isinstance(raw, dict) else f'a {type(raw).__name__}'
        raise LegacyError(f'{name} is a pickle of {what}, not a network snapshot with G, D, G_ema.')
    data = {}
    for key, value in raw.items():
        if isinstance(value, pickle_policy.PersistentRecord):
            try:
                data[key] = module_from_persistent_record(value, f'{name}: {key}')
            except LegacyError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:  # a record with the wrong shape of data
                raise LegacyError(f'{name}: "{key}" is a malformed network record ({type(e).__name__}: {str(e)[:120]}).') from None
        elif isinstance(value, (pickle_policy.ModuleRecord, pickle_policy.Inert)):
            warnings.warn(f'{name}: dropping "{key}" ({value!r}); it is not a network we can rebuild.')
            data[key] = None
        else:
            data[key] = value
    return _check_networks(data, name)

#----------------------------------------------------------------------------

def _plain(obj):
    """Records' init kwargs -> EasyDicts / lists of plain values (deep copy)."""
    if isinstance(obj, dict):
        return dnnlib.EasyDict({k: _plain(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return copy.deepcopy(obj)


def _check_supported(rec, what):
    facts = getattr(rec, 'source_facts', {})
    if facts.get('stylegan3'):
        raise LegacyError(f'{what} is a StyleGAN3 network (--cfg=stylegan3-t/r); only StyleGAN2 architectures '
                          f'(StyleGAN2-ADA, stylegan3 repo --cfg=stylegan2, i-StyleGAN) are supported.')
    if rec.class_name not in CLASS_MAP:
        raise LegacyError(f'{what} is a {allowlist.brief(rec.class_name)}, which has no counterpart here (known: {", ".join(CLASS_MAP)}).')


def _bind_kwargs(class_name, args, kwargs, what):
    """Fold positional init args (if any were pickled) into kwargs using our class's signature."""
    if not args:
        return kwargs
    cls = dnnlib.util.get_obj_by_name(class_name)
    try:
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
    except TypeError as e:
        raise LegacyError(f'{what}: its constructor arguments do not fit {class_name} ({e}).') from None
    out = dict(bound.arguments)
    out.pop(next(iter(inspect.signature(cls.__init__).parameters)))
    return dnnlib.EasyDict(out)


def _is_istylegan_mapping(rec) -> bool:
    if not isinstance(rec, pickle_policy._StateRecord):
        return False
    names = rec.named_tensors()
    return any(k in rec.init_kwargs for k in ISTYLEGAN_MAPPING_KWARGS) or 'importance' in names or \
        any(k.startswith(('flow.', 'flow_fc')) for k in names)


def module_from_persistent_record(rec, what: str) -> torch.nn.Module:
    """Build our module for one NVIDIA / i-StyleGAN persistent record and load its tensors (strict)."""
    _check_supported(rec, what)
    class_name = CLASS_MAP[rec.class_name]
    kwargs = _plain(rec.init_kwargs)
    state = dict(rec.named_tensors())
    mapping = rec.children().get('mapping')
    exported_flow = mapping is None and 'cond_mode' in kwargs.get('mapping_kwargs', {})  # our export (nvidia_export.py): flat tensors

    if rec.class_name == 'Generator' and (_is_istylegan_mapping(mapping) or exported_flow):
        # (b) i-StyleGAN: the flow mapping is converted by the CG-GAN code.
        try:
            from training.domain_flow import convert_istylegan_mapping
        except ImportError as e:
            raise LegacyError(f'{what} is an i-StyleGAN snapshot; its flow mapping needs training/domain_flow.py ({e}).') from None
        if exported_flow:
            m_init = dict(kwargs['mapping_kwargs'], **{k: kwargs[k] for k in ('z_dim', 'c_dim', 'w_dim')})
            m_tensors = {k[len('mapping.'):]: v for k, v in state.items() if k.startswith('mapping.')}
        else:
            m_init, m_tensors = _plain(mapping.init_kwargs), mapping.named_tensors()
        m_name, m_kwargs, m_state = convert_istylegan_mapping(m_init, m_tensors)
        m_kwargs = {k: v for k, v in m_kwargs.items() if k not in ('z_dim', 'c_dim', 'w_dim', 'num_ws')}
        kwargs['mapping_kwargs'] = dnnlib.EasyDict(class_name=m_name, **m_kwargs)
        state = {k: v for k, v in state.items() if not k.startswith('mapping.')}
        state.update({f'mapping.{k}': v for k, v in m_state.items()})
    elif rec.class_name == 'Discriminator' and 'mapping_kwargs' in kwargs:
        # i-StyleGAN's D conditions by concatenation, exactly as NVIDIA's; drop its extra kwargs.
        mk = dict(kwargs['mapping_kwargs'])
        if mk.get('cond_mode', 'concat') != 'concat' or mk.get('use_label', 0):
            raise LegacyError(f'{what}: a discriminator with mapping cond_mode={mk.get("cond_mode")!r} / use_label is not supported.')
        kwargs['mapping_kwargs'] = dnnlib.EasyDict({k: v for k, v in mk.items() if k not in ISTYLEGAN_MAPPING_KWARGS})

    kwargs = _bind_kwargs(class_name, rec.init_args, kwargs, what)
    if rec.source_facts.get('stylegan3_repo'):
        _add_stylegan3_repo_defaults(rec.class_name, kwargs)
    try:
        module = allowlist.construct(CLASS_SLOT[rec.class_name], dict(kwargs, class_name=class_name), what)
    except allowlist.RefusedError as e:
        raise LegacyError(str(e).replace('cannot build', 'its constructor arguments do not fit', 1)) from None
    try:
        snapshot.load_state_checked(module, state, what)
    except snapshot.SnapshotError as e:
        raise LegacyError(str(e)) from None
    # Keep the stored train/eval mode and requires_grad flags (NVIDIA's G_ema is eval + frozen).
    module.train(bool(rec.state.get('training', False)))
    for pname, param in module.named_parameters():
        stored = state.get(pname)
        if isinstance(stored, torch.Tensor):
            param.requires_grad_(bool(stored.requires_grad))
    return module

def _add_stylegan3_repo_defaults(class_name, kwargs):
    """The stylegan3 repo's networks_stylegan2.py has other defaults than ours; its pickles store only passed kwargs."""
    if class_name == 'Generator':
        synthesis = kwargs.get('synthesis_kwargs', {})
        for key, value in (('num_fp16_res', 4), ('conv_clamp', 256)):
            if key not in kwargs and key not in synthesis:
                kwargs[key] = value
        kwargs['mapping_kwargs'] = dnnlib.EasyDict(kwargs.get('mapping_kwargs', {}))
        kwargs['mapping_kwargs'].setdefault('w_avg_beta', 0.998)
    if class_name == 'Discriminator':
        kwargs.setdefault('num_fp16_res', 4)
        kwargs.setdefault('conv_clamp', 256)

#----------------------------------------------------------------------------

def _force_fp16(data: dict) -> dict:
    """Rebuild G/D with 4 FP16 resolutions and conv clamping 256, as NVIDIA's --force-fp16 does."""
    from torch_utils import persistence
    for key in ('G', 'D', 'G_ema'):
        old = data.get(key)
        if old is None:
            continue
        spec = persistence.module_spec(old)
        kwargs = _plain(spec['init_kwargs'])
        if key.startswith('G'):
            kwargs.synthesis_kwargs = dnnlib.EasyDict(kwargs.get('synthesis_kwargs', {}))
            kwargs.synthesis_kwargs.num_fp16_res = 4
            kwargs.synthesis_kwargs.conv_clamp = 256
        else:
            kwargs.num_fp16_res = 4
            kwargs.conv_clamp = 256
        if kwargs != spec['init_kwargs']:
            new = dnnlib.util.construct_class_by_name(class_name=spec['class_name'], **kwargs)
            new.load_state_dict(old.state_dict(), strict=True)
            new.train(old.training).requires_grad_(False)
            data[key] = new
    return data

#----------------------------------------------------------------------------

def convert_network(source: str, dest: str, force_fp16: bool = False) -> dict:
    """Convert between our snapshots and NVIDIA's pickles: dest *.pkl = NVIDIA's format (torch_utils/nvidia_export.py),
    dest *.pt = ours (weights only: a --resume transfer start, --network for generate.py / calc_metrics.py)."""
    from torch_utils import nvidia_export
    if not dest.endswith(('.pkl', '.pt')):
        raise LegacyError(f'--dest={dest} must end in .pkl (NVIDIA\'s format) or .pt (ours).')
    if os.path.exists(dest):
        raise LegacyError(f'--dest={dest} exists; choose another name or remove it first.')
    try:
        data = load_network(source, force_fp16=force_fp16)
    except FileNotFoundError:
        raise LegacyError(f'--source={source} does not exist; pass a network-snapshot-*.pt or *.pkl file or a URL.') from None
    except (OSError, pickle.UnpicklingError) as e:
        raise LegacyError(f'Cannot read {source}: {e}') from None
    if dest.endswith('.pkl'):
        try:
            payload = nvidia_export.export_bytes(data)
        except nvidia_export.ExportError as e:
            raise LegacyError(f'Cannot export {source}: {e}') from None
        with dnnlib.util.atomic_write(dest, durable=True) as f:
            f.write(payload)
    else:
        keep = {k: data.get(k) for k in ('G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs', 'domain_names') if data.get(k) is not None}
        snapshot.save_snapshot(dest, keep)
    return {k: type(v).__name__ for k, v in data.items() if v is not None}

#----------------------------------------------------------------------------

@click.command(context_settings={'max_content_width': 80, 'terminal_width': 80})
@click.option('--source',     help='Network to convert: our snapshot (.pt), NVIDIA / i-StyleGAN pickle (.pkl), or URL', metavar='PATH', required=True)
@click.option('--dest',       help='Output: *.pkl in NVIDIA\'s format, or *.pt in ours', metavar='PATH', required=True)
@click.option('--force-fp16', help='Rebuild G and D with 4 fp16 resolutions and conv clamping 256 (NVIDIA\'s option)', is_flag=True)
def main(source, dest, force_fp16):
    """Convert network snapshots between our .pt format and NVIDIA's pickle format.

    \b
    # Our run -> NVIDIA's format, for NVIDIA's generate.py, projector.py, visualizer, video scripts:
    python legacy.py --source=runs/00000-x/network-snapshot-000400.pt --dest=network-snapshot-000400.pkl
    \b
    # NVIDIA / i-StyleGAN pickle -> our format (read without executing anything from the file):
    python legacy.py --source=ffhq.pkl --dest=ffhq.pt

    Exported pickles hold no code of NVIDIA's: each network is rebuilt by the networks module of the code
    base that opens it. StyleGAN2-ADA runs open in NVIDIA's stylegan2-ada-pytorch, stylegan3 and in
    i-StyleGAN; i-StyleGAN / CG-GAN runs (flow mapping) are written with i-StyleGAN's mapping arguments
    and open in i-StyleGAN's code (NVIDIA's has no flow mapping and says so). The augmentation pipeline
    is not exported (NVIDIA's tools do not use it). TensorFlow pickles are refused; convert them with
    NVIDIA's legacy.py first.
    """
    try:
        kinds = convert_network(source, dest, force_fp16=force_fp16)
    except (LegacyError, safe_pickle.UnsafePickleError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f'Wrote {dest} ({", ".join(f"{k}: {v}" for k, v in kinds.items() if k in ("G", "D", "G_ema"))}).')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------

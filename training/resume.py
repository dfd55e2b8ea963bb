"""How `train.py --resume` combines a snapshot with the command line into the options of the run.

exact      our .pt with stored run options: the run continues (counters, optimizers, ADA p, RNG). The
           architecture and every stored value come from the snapshot; options given explicitly on the
           command line override what may change mid-run (MID_RUN, the augmentation, --mirror), one log
           line each; explicit options that would change the networks or the batch are refused in one
           sentence that says what to do. `--kimg` stays NVIDIA's total.
fine-tune  exact, with --model switching between istylegan and cg-gan (the same networks, the new
           model's losses): the paper's recipe, i-StyleGAN to 20 M images, then CG-GAN to 25 M.
transfer   an NVIDIA / i-StyleGAN pickle, a weights-only .pt, or a --model that needs another mapping
           network: a new run (counters at 0) with the file's architecture unless architecture options
           are given; a pickle's ADA p carries over; ADA adapts with ada_kimg=100 and the EMA has no
           ramp-up (NVIDIA's rule for resumed runs), unless --ada-kimg / --ema-rampup are given.

Class names never come from the file: every slot is rebuilt with this code's class (CLASS_NAMES), and
only the values stored under it are taken.
"""
import json
import os

import dnnlib

#----------------------------------------------------------------------------

class ResumeError(ValueError):
    """--resume cannot be honoured; the message is one sentence that says what to do."""

# The only classes a resumed run builds, whatever the file says.
CLASS_NAMES = dict(
    G='training.networks.Generator', D='training.networks.Discriminator', mapping='training.domain_flow.DomainFlowMapping',
    loss='training.loss.StyleGAN2Loss', opt='torch.optim.Adam', augment='training.augment.AugmentPipe',
    dataset='training.dataset.ImageFolderDataset')

# Command-line options a running training may change: option -> paths into the run options.
MID_RUN = {
    'gamma':            [('loss_kwargs', 'r1_gamma')],
    'glr':              [('G_opt_kwargs', 'lr')],
    'dlr':              [('D_opt_kwargs', 'lr')],
    'lambda_sparse':    [('loss_kwargs', 'lambda_sparse')],
    'lambda_imgsparse': [('loss_kwargs', 'lambda_imgsparse')],
    'perturb_norm':     [('loss_kwargs', 'imgsparse_kwargs', 'delta')],
    'sparse_estimator': [('loss_kwargs', 'imgsparse_kwargs', 'estimator')],
    'sparse_columns':   [('loss_kwargs', 'imgsparse_kwargs', 'num_columns')],
    'sparse_interval':  [('loss_kwargs', 'sparse_interval')],
    'kimg':             [('total_kimg',)],
    'tick':             [('kimg_per_tick',)],
    'snap':             [('image_snapshot_ticks',), ('network_snapshot_ticks',)],
    'metrics':          [('metrics',)],
    'target':           [('ada_target',)],
    'ada_kimg':         [('ada_kimg',)],
    'ema':              [('ema_kimg',)],
    'ema_rampup':       [('ema_rampup',)],
    'seed':             [('random_seed',), ('training_set_kwargs', 'random_seed')],
    'mbstd_group':      [('D_kwargs', 'epilogue_kwargs', 'mbstd_group_size')],
    'fp32':             [('G_kwargs', 'synthesis_kwargs', 'num_fp16_res'), ('G_kwargs', 'synthesis_kwargs', 'conv_clamp'),
                         ('D_kwargs', 'num_fp16_res'), ('D_kwargs', 'conv_clamp')],
}

# Options that shape the networks (or the batch, which Adam's state and the minibatch-std groups assume).
NETWORK = ('cfg', 'cbase', 'cmax', 'map_depth', 'cond_mode', 'i_dim', 'flow_blocks', 'flow_dim', 'flow_norm')
ARCHITECTURE = NETWORK + ('batch', 'cond')

# Always taken from this invocation: the machine, not the run.
MACHINE = ('num_gpus', 'batch_gpu', 'data_loader_kwargs', 'use_cuda', 'fast', 'cudnn_benchmark', 'allow_tf32')

FLOW_MODELS = ('istylegan', 'cg-gan')
FLOW_MAPPING_KEYS = ('class_name', 'cond_mode', 'i_dim', 'flow_blocks', 'flow_dim', 'flow_norm')

# Augmentation options: given explicitly, they replace the snapshot's augmentation as a whole (NVIDIA resumes
# with the options of the command line), in one log line; ADA's p carries on when ADA stays on.
AUGMENT_OPTIONS = ('aug', 'augpipe', 'p')
AUGMENT_KEYS = ('augment_kwargs', 'augment_p', 'ada_target', 'ada_kimg')

#----------------------------------------------------------------------------

def _plain(obj):
    return json.loads(json.dumps(obj), object_hook=dnnlib.EasyDict)


def _get(d, path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _set(d, path, value):
    for key in path[:-1]:
        d = d.setdefault(key, dnnlib.EasyDict())
    d[path[-1]] = value


def model_of(options) -> str:
    """The --model a run's options describe: the mapping class and whether L_s is on."""
    if (options.get('G_kwargs') or {}).get('mapping_kwargs', {}).get('class_name') is None:
        return 'stylegan2-ada'
    return 'cg-gan' if (options.get('loss_kwargs') or {}).get('lambda_imgsparse', 0) else 'istylegan'


def architecture(G_kwargs, D_kwargs):
    """The part of the network kwargs that fixes the tensors (fp16 placement and clamping do not)."""
    G, D = _plain(G_kwargs), _plain(D_kwargs)
    for kw in (G.get('synthesis_kwargs', {}), D):
        kw.pop('num_fp16_res', None)
        kw.pop('conv_clamp', None)
    return G, D


def suggest_total(kimg: float) -> str:
    """A total a quarter longer than `kimg`, rounded to two significant digits of the extra part."""
    extra = max(kimg * 0.25, 1e-3)
    step = 10 ** (len(str(int(extra))) - 2) if extra >= 100 else 1 if extra >= 1 else 0.1 if extra >= 0.1 else 0.001
    return f'{kimg + max(round(extra / step) * step, step):g}'

#----------------------------------------------------------------------------

def peek(resume):
    """(kind, stored options or None, saved record dict) of a resume file, read without building modules."""
    from torch_utils import allowlist
    from torch_utils.snapshot import check_records, load_snapshot, SnapshotError
    if not resume.endswith('.pt'):
        return 'pickle', None, None
    if not os.path.isfile(resume):
        raise ResumeError(f'--resume file "{resume}" does not exist; check the path.')
    try:
        saved = load_snapshot(resume, rebuild_modules=False)
        check_records(saved, resume)                    # a hostile network record fails here, before any run folder exists
    except SnapshotError as e:
        raise ResumeError(f'Cannot resume from "{resume}": {e}') from None
    if saved.get('options') is None or 'cur_nimg' not in saved:
        return 'weights', None, saved
    try:                                                # class names only from the allow-list (this code's), values checked
        stored = allowlist.run_options(saved['options'], f'Cannot resume from "{resume}"')
        allowlist.resume_state(saved, f'Cannot resume from "{resume}"', stored.batch_size)
    except allowlist.RefusedError as e:
        raise ResumeError(str(e)) from None
    return 'exact', stored, saved


def _record_kwargs(saved, name):
    rec = saved.get(name) if saved else None
    return rec.get('init_kwargs') if isinstance(rec, dict) else None


def check_data(init_kwargs, data, resume, domains=True):
    """The snapshot's networks must fit --data (`data`: resolution, channels, label_dim, use_labels);
    domains=False (a transfer) checks only the image shape: conditioning tensors that differ start fresh."""
    if not isinstance(init_kwargs, dict):
        return
    res, ch = init_kwargs.get('img_resolution'), init_kwargs.get('img_channels')
    if res is not None and res != data.resolution:
        raise ResumeError(f'"{resume}" was trained at {res}x{res} but --data is {data.resolution}x{data.resolution}; '
                          f'use a data set of the snapshot\'s resolution.')
    if ch is not None and ch != data.channels:
        raise ResumeError(f'"{resume}" makes {ch}-channel images but --data has {data.channels} channels; use a matching data set.')
    c_dim = init_kwargs.get('c_dim')
    if not domains:
        return
    if c_dim and not data.use_labels:
        raise ResumeError(f'"{resume}" is conditional on {c_dim} domains but --data has no labels (or --cond=0); use a labelled data set.')
    if c_dim and c_dim != data.label_dim:
        raise ResumeError(f'"{resume}" was trained with {c_dim} domains but --data has {data.label_dim}; use the same domains.')


def net_model(nets) -> str:
    """'istylegan' when the file's generator has the domain flow mapping, else 'stylegan2-ada'."""
    G = nets.get('G_ema') if nets.get('G_ema') is not None else nets.get('G')
    return 'istylegan' if type(getattr(G, 'mapping', None)).__name__ == 'DomainFlowMapping' else 'stylegan2-ada'


def exact_resume(resume, stored, saved, c, data, explicit, requested_model, log):
    """Options of an exact resume or a fine-tune: the snapshot's, then the explicit MID_RUN overrides."""
    check_data(_record_kwargs(saved, 'G'), data, resume)
    stored_model = model_of(stored)
    model = requested_model or stored_model
    if model != stored_model and not (model in FLOW_MODELS and stored_model in FLOW_MODELS):
        return None                                                     # another mapping network: transfer
    total_kimg = c.total_kimg if 'kimg' in explicit else stored.total_kimg
    cur_kimg = int(saved['cur_nimg']) / 1000
    if total_kimg * 1000 <= int(saved['cur_nimg']):
        raise ResumeError(f'The snapshot is at {cur_kimg:g} kimg and --kimg is the total length of the run ({total_kimg:g}); '
                          f'pass a larger total, e.g. --kimg={suggest_total(cur_kimg)}.')
    res = stored.training_set_kwargs.get('resolution')
    if res != data.resolution:
        raise ResumeError(f'The snapshot was trained on {res} px images but --data holds {data.resolution} px; '
                          f'resume with data of the same resolution (or start a new run).')
    arch_given = sorted(k for k in NETWORK if k in explicit)
    if arch_given and architecture(c.G_kwargs, c.D_kwargs) != architecture(stored.G_kwargs, stored.D_kwargs):
        opts = ', '.join(f'--{k.replace("_", "-")}' for k in arch_given)
        raise ResumeError(f'{opts} would change the networks of "{resume}"; an exact resume keeps the snapshot\'s architecture, '
                          f'so leave {"them" if len(arch_given) > 1 else "it"} out (or start a new run without --resume).')
    if 'batch' in explicit and c.batch_size != stored.batch_size:
        raise ResumeError(f'The snapshot was trained with --batch={stored.batch_size}; an exact resume needs the same batch, '
                          f'pass --batch={stored.batch_size} or leave it out.')

    out = _plain({k: v for k, v in stored.items() if k not in MACHINE and k not in ('options', 'run_dir', 'resume_snapshot', 'resume_pkl')})
    for k in MACHINE:
        if k in c:
            out[k] = c[k]
    if 'batch_gpu' not in explicit and stored.get('num_gpus') == c.num_gpus:
        out.batch_gpu = stored.batch_gpu
    if out.batch_size % (out.batch_gpu * c.num_gpus) != 0:
        out.batch_gpu = out.batch_size // c.num_gpus
    out.training_set_kwargs.path = c.training_set_kwargs.path
    out.preset = stored.get('preset', c.preset)
    force_class_names(out)

    if model != stored_model:                                           # fine-tune: same networks, new losses
        log(f'Fine-tuning: continuing the {stored_model} run as {model} (counters, optimizers and ADA p carry on).')
        cg_keys = ('lambda_imgsparse', 'imgsparse_kwargs', 'sparse_interval')
        for key in cg_keys:
            out.loss_kwargs.pop(key, None)
        if model == 'cg-gan':
            out.loss_kwargs.update({key: c.loss_kwargs[key] for key in cg_keys})
    for opt, paths in MID_RUN.items():
        if opt not in explicit:
            continue
        for path in paths:
            new = _get(c, path)
            if path[0] == 'loss_kwargs' and path[1] in ('lambda_imgsparse', 'imgsparse_kwargs', 'sparse_interval') and model != 'cg-gan':
                raise ResumeError(f'--{opt.replace("_", "-")} belongs to CG-GAN but this run is {model}; add --model=cg-gan to fine-tune it.')
            old = _get(out, path)
            if new != old:
                log(f'Resume: --{opt.replace("_", "-")} sets {".".join(path)} = {new} (the snapshot had {old}).')
                _set(out, path, new)
    _override_augmentation(out, c, explicit, log)
    if 'mirror' in explicit and bool(c.training_set_kwargs.xflip) != bool(out.training_set_kwargs.get('xflip')):
        log(f'Resume: --mirror={int(bool(c.training_set_kwargs.xflip))} sets training_set_kwargs.xflip = {bool(c.training_set_kwargs.xflip)} '
            f'(the snapshot had {bool(out.training_set_kwargs.get("xflip"))}); the image order differs from here on.')
        out.training_set_kwargs.xflip = bool(c.training_set_kwargs.xflip)
    out.resume_snapshot = resume
    return out


def augmentation_text(c) -> str:
    """'none', 'ADA (target 0.6; xflip, rotate90, ...)' or 'fixed p=0.2 (...)': a run's augmentation in words."""
    pipe = c.get('augment_kwargs')
    if pipe is None or (c.get('ada_target') is None and not c.get('augment_p')):
        return 'none'
    ops = ', '.join(k for k, v in pipe.items() if k != 'class_name' and v)
    return (f'ADA (target {c.ada_target:g}' if c.get('ada_target') is not None else f'fixed (p={c.augment_p:g}') + f'; {ops})'


def _override_augmentation(out, c, explicit, log):
    given = [k for k in AUGMENT_OPTIONS if k in explicit]
    if not given or all(_plain(c.get(k)) == out.get(k) for k in AUGMENT_KEYS):
        return
    old = augmentation_text(out)
    for key in AUGMENT_KEYS:
        out.pop(key, None)
        if c.get(key) is not None:
            out[key] = _plain(c[key])
    if out.get('augment_kwargs') is not None:
        out.augment_kwargs.class_name = CLASS_NAMES['augment']
    log(f'Resume: {", ".join("--" + k for k in given)} set the augmentation to {augmentation_text(out)} (the snapshot had {old})'
        + ('; ADA p carries on from the snapshot.' if out.get('ada_target') is not None else '.'))


def force_class_names(c):
    """Every slot gets this code's class, whatever name the stored options gave."""
    c.G_kwargs.class_name = CLASS_NAMES['G']
    c.D_kwargs.class_name = CLASS_NAMES['D']
    mapping = c.G_kwargs.setdefault('mapping_kwargs', dnnlib.EasyDict())
    if mapping.get('class_name') is not None:
        mapping.class_name = CLASS_NAMES['mapping']
    c.loss_kwargs.class_name = CLASS_NAMES['loss']
    c.G_opt_kwargs.class_name = c.D_opt_kwargs.class_name = CLASS_NAMES['opt']
    if c.get('augment_kwargs') is not None:
        c.augment_kwargs.class_name = CLASS_NAMES['augment']
    c.training_set_kwargs.class_name = CLASS_NAMES['dataset']


def transfer(resume, nets, c, data, explicit, model, log):
    """Options of a transfer start: the file's architecture (unless architecture options are given) with
    the mapping `model` needs, the pickle's ADA p, NVIDIA's resume rule for ADA speed and EMA ramp-up."""
    G = nets.get('G_ema') if nets.get('G_ema') is not None else nets.get('G')
    kwargs = getattr(G, 'init_kwargs', None)
    check_data(kwargs, data, resume, domains=False)
    if kwargs is not None and not any(k in explicit for k in NETWORK):
        common = ('c_dim', 'img_resolution', 'img_channels')
        G_kwargs = _plain({k: v for k, v in kwargs.items() if k not in common})
        mapping = G_kwargs.setdefault('mapping_kwargs', dnnlib.EasyDict())
        flow_keys = [k for k in c.G_kwargs.mapping_kwargs if k != 'num_layers']
        if model in FLOW_MODELS and mapping.get('class_name') is None:          # new flow mapping, trained from scratch
            mapping.update({k: c.G_kwargs.mapping_kwargs[k] for k in flow_keys})
        elif model == 'stylegan2-ada':
            for k in FLOW_MAPPING_KEYS:
                mapping.pop(k, None)
        c.G_kwargs = G_kwargs
        D_kwargs = getattr(nets.get('D'), 'init_kwargs', None)
        if D_kwargs is not None:
            c.D_kwargs = _plain({k: v for k, v in D_kwargs.items() if k not in common})
        log(f'Transfer: the networks take the architecture stored in "{resume}".')
    force_class_names(c)
    pipe = nets.get('augment_pipe')
    if pipe is not None and c.get('augment_kwargs') is not None and 'p' not in explicit and hasattr(pipe, 'p'):
        c.augment_p = float(pipe.p)
        log(f'Transfer: ADA p starts at {c.augment_p:.4f}, the value stored in "{resume}".')
    if 'ada_kimg' not in explicit:
        c.ada_kimg = 100
    if 'ema_rampup' not in explicit:
        c.ema_rampup = None
    c.resume_pkl = resume
    return c

#----------------------------------------------------------------------------

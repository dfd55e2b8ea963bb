"""Train StyleGAN2-ADA, i-StyleGAN or CG-GAN on one or many GPUs (or the CPU).

Examples:
  python train.py --outdir=runs --data=afhq-256.zip --cfg=auto --model=cg-gan --gpus=1
  torchrun --nproc_per_node=8 train.py --outdir=runs --data=afhq-256.zip --cfg=paper256 --model=istylegan
  python train.py --outdir=runs --data=afhq-256.zip --resume=latest
"""
import json
import os
import re
import tempfile

import click

import dnnlib
from training import presets

#----------------------------------------------------------------------------

class UserError(Exception):
    """A problem with the user's options or files; printed as one sentence without a traceback."""

#----------------------------------------------------------------------------

NOT_LOOP_KWARGS = ('use_cuda', 'preset', 'run_notes')   # run options that the training loop does not take

# Options that belong to one model: given without --model they choose it (the i-StyleGAN and CG-GAN
# READMEs pass them so), given with another --model they are refused.
CG_OPTIONS = ('lambda_imgsparse', 'perturb_norm', 'sparse_estimator', 'sparse_columns', 'sparse_interval')
FLOW_OPTIONS = ('cond_mode', 'i_dim', 'flow_blocks', 'flow_dim', 'flow_norm', 'lambda_sparse')


def lambda_note(c):
    """The run-time line that says what --lambda-imgsparse weighs here (CG-GAN runs only), else None."""
    lam = (c.get('loss_kwargs') or {}).get('lambda_imgsparse')
    if not lam:
        return None
    return (f'L_s: lambda_imgsparse={lam:g} weighs (1/HW) sum_chw |d img / d x_k|, the area-normalised L1 norm of one Jacobian column; '
            f'the released code\'s lambda_imgsparse (0.1) has no equivalent, its term compared two images rendered with different noise '
            f'(docs/method.md).')


def _worker(c, temp_dir):
    """Entry point of one rank (spawned by --gpus=N, started by torchrun, or called directly)."""
    import torch
    from torch_utils import distributed
    from training import training_loop
    device = distributed.init('cuda' if c.use_cuda else 'cpu')
    c.rank = distributed.get_rank()
    c.num_gpus = distributed.get_world_size()
    c.device = str(device)
    if c.rank != 0:
        c.log_fn = lambda *args, **kwargs: None
    log_file = None
    if c.rank == 0:
        log_file = open(os.path.join(c.run_dir, 'log.txt'), 'a')
        def log_fn(*args, **kwargs):
            print(*args, **kwargs, flush=True)
            print(*args, **kwargs, file=log_file, flush=True)
        c.log_fn = log_fn
        print(f'Training options:\n{json.dumps(c.options, indent=2)}\n', file=log_file, flush=True)  # the console had them
    try:
        for note in c.get('run_notes') or []:
            c.log_fn(note)
        kwargs = {k: v for k, v in c.items() if k not in NOT_LOOP_KWARGS}
        training_loop.training_loop(**kwargs)
    except BaseException as e:
        if log_file is not None:                    # the fatal error goes to log.txt too
            print(fatal_message(e), file=log_file, flush=True)
        distributed.shutdown(sync=False)  # a sibling may be dead: no barrier
        raise
    finally:
        if log_file is not None:
            log_file.close()
    distributed.shutdown()
    del torch, temp_dir


def stored_options(c):
    """The run options as training_options.json and the snapshots store them (plain JSON data)."""
    return json.loads(json.dumps({k: v for k, v in c.items() if k not in ('options', 'log_fn', 'rank', 'device', 'run_notes')}))


def user_errors():
    """Exceptions that are one sentence for the user (no traceback)."""
    from datasets.errors import DatasetError
    from torch_utils.snapshot import SnapshotError
    from training.training_loop import TrainingError
    return (UserError, TrainingError, SnapshotError, DatasetError)


def fatal_message(e):
    """What log.txt records of the exception that ended a run: the sentence, or the traceback of a bug."""
    if isinstance(e, user_errors()):
        return f'Error: {e}'
    if isinstance(e, KeyboardInterrupt):
        return 'Error: interrupted (KeyboardInterrupt).'
    import traceback
    return ''.join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


def launch_training(c, desc, outdir, dry_run):
    """Create the run directory, write training_options.json, start the ranks."""
    from torch_utils import distributed
    under_torchrun = int(os.environ.get('WORLD_SIZE', '1')) > 1
    rank = int(os.environ.get('RANK', '0'))

    # Pick the run directory (rank 0 decides; under torchrun the others wait for it on a file).
    if rank == 0 and os.path.isdir(outdir):
        dnnlib.util.remove_stale_temp_files(outdir, depth=1)  # what killed runs left: our temp files only
    prev_run_dirs = [x for x in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, x))] if os.path.isdir(outdir) else []
    prev_run_ids = [int(m.group()) for m in (re.match(r'^\d+', x) for x in prev_run_dirs) if m is not None]
    cur_run_id = max(prev_run_ids, default=-1) + 1
    c.run_dir = os.path.join(outdir, f'{cur_run_id:05d}-{desc}')
    continued = _continued_run_dir(c, outdir)
    if continued is not None:                       # exact resume from a run's last snapshot: the run goes on in its folder
        c.run_dir = continued
    assert os.path.dirname(os.path.abspath(c.run_dir)) == os.path.abspath(outdir)  # desc is sanitised in build_config

    options = stored_options(c)
    c.options = options
    print0 = print if rank == 0 else (lambda *a, **k: None)
    print0()
    print0('Training options:')
    print0(json.dumps(options, indent=2))
    print0()
    print0(f'Output directory:    {c.run_dir}' + (' (continuing the run)' if continued else
                                                        f' (resumed from {c.resume_snapshot})' if c.get('resume_snapshot') else ''))
    print0(f'Number of ranks:     {c.num_gpus} ({"CUDA" if c.use_cuda else "CPU, gloo"})')
    print0(f'Batch size:          {c.batch_size} images ({c.batch_gpu} per pass)')
    print0(f'Training duration:   {c.total_kimg} kimg')
    print0(f'Dataset path:        {c.training_set_kwargs.path}')
    print0()
    if dry_run:
        for note in c.get('run_notes') or []:          # a real run logs them once, in log.txt too
            print0(note)
        print0('Dry run; exiting.')
        return
    if under_torchrun:
        c.run_dir = _agree_run_dir(c.run_dir, outdir)
    if rank == 0:
        try:
            os.makedirs(c.run_dir, exist_ok=True)
            if not continued:                       # a continued run keeps its first options; log.txt gets each resume's
                _write_json_atomic(os.path.join(c.run_dir, 'training_options.json'), options)
        except OSError as e:
            raise UserError(f'Cannot create the run directory "{c.run_dir}" ({e.strerror}); choose another --outdir.') from None
    print0('Launching processes...')
    if under_torchrun or c.num_gpus == 1:
        _worker(c, None)
    else:
        with tempfile.TemporaryDirectory() as temp_dir:
            try:
                distributed.launch(_worker, c.num_gpus, args=(c, temp_dir))
            except distributed.DistributedError as e:
                raise UserError(str(e)) from None


def _continued_run_dir(c, outdir):
    """The run folder an exact resume continues in, or None for a new folder. It is the snapshot's own when that is
    a run folder of `outdir`, the snapshot is its highest-kimg one (an older one opens a new folder, so later snapshots
    stay intact), the model is the folder's (a fine-tune is a new phase: its own folder, name and options) and no later
    snapshot can take the resumed one's kimg in its name (ticks of at least 1 kimg and a total past the next kimg)."""
    from training.resume import model_of
    from training.training_loop import RUN_DIR_RE, SNAPSHOT_RE, find_latest_snapshot
    snapshot = c.get('resume_snapshot')
    if snapshot is None:
        return None
    folder = os.path.dirname(os.path.abspath(snapshot))
    if os.path.dirname(folder) != os.path.abspath(outdir) or not RUN_DIR_RE.match(os.path.basename(folder)):
        return None
    latest = find_latest_snapshot(folder)
    if not latest or not os.path.samefile(latest, snapshot):
        return None
    try:
        with open(os.path.join(folder, 'training_options.json')) as f:
            folder_model = model_of(json.load(f))
    except (OSError, ValueError, AttributeError):
        return None
    kimg = int(SNAPSHOT_RE.search(latest).group(1))
    if folder_model != model_of(c) or c.kimg_per_tick < 1 or c.total_kimg < kimg + 1:
        return None
    return os.path.join(outdir, os.path.basename(folder))


def _agree_run_dir(run_dir, outdir):
    """Under torchrun, every rank uses rank 0's run directory (broadcast through a TCP store-less file-free path)."""
    import torch
    from torch_utils import distributed
    distributed.init('cuda' if torch.cuda.is_available() else 'cpu')
    return distributed.broadcast_object(run_dir)


def _write_json_atomic(path, obj):
    with dnnlib.util.atomic_write(path, 'w') as f:
        json.dump(obj, f, indent=2)

#----------------------------------------------------------------------------

def init_dataset_kwargs(data, cond, mirror, seed, subset=None):
    try:
        from datasets.errors import DatasetError
    except ImportError:
        DatasetError = ValueError
    try:
        dataset_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data, use_labels=True, max_size=None, xflip=False)
        dataset_obj = dnnlib.util.construct_class_by_name(**dataset_kwargs)
    except DatasetError as err:
        raise UserError(str(err)) from None
    except (IOError, OSError, ValueError) as err:
        raise UserError(f'Cannot read --data "{data}": {err}') from None
    names = getattr(dataset_obj, 'domain_names', None)
    if names is not None and dataset_obj.has_labels and dataset_obj.label_dim > len(names):
        raise UserError(f'"{data}" has domain labels up to {dataset_obj.label_dim - 1} but its dataset.json names only {len(names)} '
                        f'domains ({", ".join(names[:8])}); rebuild it with dataset_tool.py.')
    dataset_kwargs.resolution = dataset_obj.resolution
    dataset_kwargs.use_labels = dataset_obj.has_labels if cond is None else bool(cond)
    if dataset_kwargs.use_labels and not dataset_obj.has_labels:
        raise UserError(f'--cond=1 needs domain labels, but "{data}" has none; build it with labels or pass --cond=0.')
    dataset_kwargs.max_size = len(dataset_obj)
    if subset is not None:                      # NVIDIA's --subset: a seeded random subset of N images
        if subset > len(dataset_obj):
            raise UserError(f'--subset={subset} exceeds the {len(dataset_obj)} images of "{data}"; pass at most {len(dataset_obj)}.')
        dataset_kwargs.max_size = subset
    dataset_kwargs.xflip = bool(mirror)
    dataset_kwargs.random_seed = seed
    info = dnnlib.EasyDict(resolution=dataset_obj.resolution, channels=dataset_obj.num_channels, label_dim=dataset_obj.label_dim,
                           use_labels=dataset_kwargs.use_labels)
    return dataset_kwargs, getattr(dataset_obj, 'name', os.path.splitext(os.path.basename(data.rstrip('/')))[0]), info


def parse_comma_separated_list(s):
    if isinstance(s, list):
        return s
    if s is None or s.lower() == 'none' or s == '':
        return []
    return s.split(',')


def build_config(opts, explicit=()):
    """Turn the CLI options into the training_loop kwargs (an EasyDict) and a run description.

    explicit: the names of the options given on the command line (they override a resumed run's values)."""
    import torch
    from training import resume as resume_lib
    opts = dnnlib.EasyDict(opts)
    explicit = set(explicit)

    # --cfg=cg-gan / istylegan are shorthand for --cfg=auto --model=...
    if opts.cfg in ('cg-gan', 'istylegan'):
        opts.model = opts.cfg
        opts.cfg = 'auto'
        explicit.add('model')

    # Resume: read the file first, so that the run's model and preset are the defaults of this one.
    kind = stored = saved = nets = None
    requested_model = opts.model                    # None: not given (a resumed run keeps its model)
    default_model = None
    if opts.resume is not None:
        resume_path = resume_file(opts.resume, opts.outdir)
        try:
            kind, stored, saved = resume_lib.peek(resume_path)
        except resume_lib.ResumeError as e:
            raise UserError(str(e)) from None
        if kind == 'exact':
            default_model = resume_lib.model_of(stored)
            if 'cfg' not in explicit and stored.get('preset') in presets.PRESETS:
                opts.cfg = stored.preset
        else:
            nets = load_resume_networks(resume_path)
            default_model = resume_lib.net_model(nets)
    requested_model, model_note = implied_model(opts, explicit, requested_model, default_model)
    opts.model = requested_model or default_model or 'stylegan2-ada'
    use_cuda = torch.cuda.is_available()
    under_torchrun = int(os.environ.get('WORLD_SIZE', '1')) > 1
    num_gpus = int(os.environ['WORLD_SIZE']) if under_torchrun else opts.gpus
    if use_cuda and not under_torchrun and num_gpus > torch.cuda.device_count():
        raise UserError(f'--gpus={num_gpus} but only {torch.cuda.device_count()} GPUs are visible; lower --gpus.')

    # --cond: NVIDIA's default (false) for StyleGAN2-ADA; the flow models condition on the domain by design.
    cond = opts.cond
    if cond is None and kind == 'exact':            # a resumed run keeps its conditioning
        cond = bool(stored.training_set_kwargs.get('use_labels'))
    elif cond is None and opts.model == 'stylegan2-ada':
        cond = False
    if cond is False and opts.model != 'stylegan2-ada':
        raise UserError(f'--model={opts.model} conditions its flow on the domain, so it needs --cond=1 (its default); drop --cond=0 or use --model=stylegan2-ada.')
    c = dnnlib.EasyDict()
    c.training_set_kwargs, dataset_name, data_info = init_dataset_kwargs(opts.data, cond, opts.mirror, opts.seed, opts.subset)
    res = c.training_set_kwargs.resolution
    spec = presets.resolve(opts.cfg, res, num_gpus)
    c.preset = opts.cfg
    c.data_loader_kwargs = dnnlib.EasyDict(pin_memory=use_cuda, num_workers=opts.workers if opts.workers is not None else (3 if use_cuda else 0),
                                           prefetch_factor=2, persistent_workers=True)

    # Networks.
    fp16 = not (opts.fp32 or not use_cuda)
    z_dim = spec.zdim
    c.G_kwargs, c.D_kwargs = presets.network_kwargs(spec, cbase=opts.cbase, cmax=opts.cmax, map_depth=opts.map_depth, fp16=fp16)
    if opts.concat_dim is not None:             # i-StyleGAN's --concat_dim: label embedding size
        c.G_kwargs.mapping_kwargs.embed_features = opts.concat_dim
    if opts.nhwc:                               # NVIDIA's --nhwc
        c.G_kwargs.synthesis_kwargs.fp16_channels_last = c.D_kwargs.block_kwargs.fp16_channels_last = True
    if opts.mbstd_group is not None:            # NVIDIA's (stylegan3) --mbstd-group
        c.D_kwargs.epilogue_kwargs.mbstd_group_size = opts.mbstd_group
    if opts.freezed:                            # NVIDIA's --freezed (Freeze-D)
        c.D_kwargs.block_kwargs.freeze_layers = opts.freezed
    glr = opts.glr if opts.glr is not None else spec.lrate
    dlr = opts.dlr if opts.dlr is not None else spec.lrate
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=glr, betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=dlr, betas=[0, 0.99], eps=1e-8)
    gamma = opts.gamma if opts.gamma is not None else spec.gamma
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=gamma, pl_weight=spec.pl, style_mixing_prob=spec.mixing)

    # Model: stylegan2-ada (concat conditioning), istylegan (flow + mask), cg-gan (+ Jacobian sparsity).
    if opts.model != 'stylegan2-ada':
        if not c.training_set_kwargs.use_labels:
            raise UserError(f'--model={opts.model} needs domain labels (it conditions the flow on the domain); use a labelled data set or --model=stylegan2-ada.')
        flow = presets.flow_mapping_kwargs(spec, opts.cfg, cond_mode=opts.cond_mode, i_dim=opts.i_dim, flow_blocks=opts.flow_blocks,
                                           flow_dim=opts.flow_dim, flow_norm=opts.flow_norm)
        if not 0 < flow.i_dim <= z_dim:
            raise UserError(f'--i-dim={flow.i_dim} must lie in 1..{z_dim} (z_dim of --cfg={opts.cfg}).')
        c.G_kwargs.mapping_kwargs.update(flow)
        c.loss_kwargs.lambda_sparse = opts.lambda_sparse if opts.lambda_sparse is not None else presets.LAMBDA_SPARSE
        if opts.model == 'cg-gan':  # (CG_OPTIONS with another flow model were refused in implied_model)
            c.loss_kwargs.lambda_imgsparse = opts.lambda_imgsparse if opts.lambda_imgsparse is not None else presets.LAMBDA_IMGSPARSE
            c.loss_kwargs.imgsparse_kwargs = dnnlib.EasyDict(delta=opts.perturb_norm, estimator=opts.sparse_estimator,
                                                             num_columns=opts.sparse_columns, style_mixing_prob=spec.mixing)
            c.loss_kwargs.sparse_interval = opts.sparse_interval if opts.sparse_interval is not None else spec.sparse_interval

    # Schedule.
    c.total_kimg = opts.kimg if opts.kimg is not None else spec.kimg
    c.kimg_per_tick = opts.tick
    c.image_snapshot_ticks = c.network_snapshot_ticks = opts.snap
    c.random_seed = c.training_set_kwargs.random_seed = opts.seed
    c.num_gpus = num_gpus
    c.batch_size = opts.batch if opts.batch is not None else spec.mb
    c.batch_gpu = opts.batch_gpu if opts.batch_gpu is not None else c.batch_size // max(num_gpus, 1)
    c.ema_kimg = opts.ema if opts.ema is not None else spec.ema
    c.ema_rampup = spec.ramp if opts.ema_rampup is None else (opts.ema_rampup or None)
    from metrics import metric_main
    metric_notes = list(filter(None, map(metric_main.legacy_note, parse_comma_separated_list(opts.metrics))))
    c.metrics = list(dict.fromkeys(map(metric_main.canonical_metric, parse_comma_separated_list(opts.metrics))))
    c.use_cuda = use_cuda
    c.fast = opts.fast
    c.cudnn_benchmark = not opts.nobench
    c.allow_tf32 = bool(opts.allow_tf32)
    if c.batch_size % max(num_gpus, 1) != 0:
        raise UserError(f'--batch={c.batch_size} must be a multiple of the number of GPUs ({num_gpus}).')
    if c.batch_gpu < 1 or c.batch_size % (c.batch_gpu * num_gpus) != 0:
        raise UserError(f'--batch={c.batch_size} must be a multiple of --batch-gpu ({c.batch_gpu}) times the number of GPUs ({num_gpus}).')
    mbstd = c.D_kwargs.epilogue_kwargs.mbstd_group_size
    if c.batch_gpu > mbstd and c.batch_gpu % mbstd != 0:
        source = '--mbstd-group' if opts.mbstd_group is not None else f'--cfg={opts.cfg}'
        raise UserError(f'--batch-gpu={c.batch_gpu} (default: --batch / --gpus) must be a multiple of the minibatch-std group size {mbstd} '
                        f'of {source}; change --batch, --batch-gpu or --mbstd-group.')

    # Augmentation.
    if opts.aug != 'noaug':
        from training.augment import AUGPIPE_SPECS
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', **AUGPIPE_SPECS[opts.augpipe])
        if opts.aug == 'ada':
            c.ada_target = opts.target
            c.ada_kimg = opts.ada_kimg
        else:
            c.augment_p = opts.p

    if opts.cfg == 'cifar' and opts.model == 'stylegan2-ada':
        c.loss_kwargs.pl_weight = 0
        c.loss_kwargs.style_mixing_prob = 0

    # Resume: our snapshot continues the run exactly (or fine-tunes it), anything else is a transfer start.
    notes = ([model_note] if model_note else []) + metric_notes     # logged once, when the run starts
    if opts.resume is not None:
        try:
            out = None
            if kind == 'exact':
                out = resume_lib.exact_resume(resume_path, stored, saved, c, data_info, explicit, requested_model, notes.append)
                if out is None:
                    notes.append(f'--model={opts.model} needs another mapping network than the snapshot\'s {resume_lib.model_of(stored)}: '
                        f'starting a new run from its weights.')
                    nets = load_resume_networks(resume_path)
            if out is None:
                out = resume_lib.transfer(resume_path, nets, c, data_info, explicit, opts.model, notes.append)
        except resume_lib.ResumeError as e:
            raise UserError(str(e)) from None
        c = out
    notes += [lambda_note(c)] if lambda_note(c) else []
    c.run_notes = notes
    desc = f'{dataset_name:s}-{c.preset:s}-{resume_lib.model_of(c):s}-gpus{num_gpus:d}-batch{c.batch_size:d}-gamma{c.loss_kwargs.r1_gamma:g}'
    for flag, value in (('subset', opts.subset), ('freezed', opts.freezed)):
        desc += f'-{flag}{value}' if value else ''
    if opts.desc is not None:
        desc += f'-{opts.desc}'
    desc = re.sub(r'[^A-Za-z0-9._+=-]', '-', desc)  # one folder name inside --outdir, whatever --desc or the data's name holds
    c.options = None
    return c, desc


def _flags(names, opts):
    return ', '.join(f'--{k.replace("_", "-")}={opts[k]}' for k in names)


def implied_model(opts, explicit, requested, default):
    """(model to train or None for the default, note or None): options of one model choose it when --model is not
    given, and are refused with another --model; a zero L_s / L_m weight and --cond-mode=concat choose nothing."""
    from training.resume import FLOW_MODELS
    cg = [k for k in CG_OPTIONS if k in explicit and not (k == 'lambda_imgsparse' and not opts.lambda_imgsparse)]
    flow = [k for k in FLOW_OPTIONS if k in explicit and not (k == 'cond_mode' and opts.cond_mode == 'concat')
            and not (k == 'lambda_sparse' and not opts.lambda_sparse)]
    if requested is not None:
        if cg and requested != 'cg-gan':
            raise UserError(f'{_flags(cg, opts)} set CG-GAN\'s Jacobian sparsity loss, which --model={requested} does not have; '
                            f'pass --model=cg-gan or leave {"them" if len(cg) > 1 else "it"} out.')
        if flow and requested == 'stylegan2-ada':
            raise UserError(f'{_flags(flow, opts)} need the flow mapping of i-StyleGAN / CG-GAN, which --model=stylegan2-ada does not have; '
                            f'pass --model=istylegan (or cg-gan) or leave {"them" if len(flow) > 1 else "it"} out.')
        return requested, None
    if cg:
        model = 'cg-gan'
    elif flow:
        model = default if default in FLOW_MODELS else 'istylegan'
    else:
        return None, None
    if model == default:
        return None, None
    return model, f'Model: {_flags(cg or flow, opts)} without --model: training {model} (as --model={model}).'


def resume_file(resume, outdir):
    """--resume=latest -> the newest snapshot under --outdir; anything else as given."""
    from training.training_loop import find_latest_snapshot
    if resume != 'latest':
        return resume
    path = find_latest_snapshot(outdir)
    if path is None:
        raise UserError(f'--resume=latest found no network-snapshot-*.pt under "{outdir}"; start without --resume or give a file.')
    return path


def load_resume_networks(resume):
    """Read a transfer file now, so that a wrong or unsafe file is one sentence here, not a worker traceback."""
    if not (os.path.isfile(resume) or '://' in resume):
        raise UserError(f'--resume file "{resume}" does not exist; check the path.')
    import legacy
    from torch_utils.safe_pickle import UnsafePickleError
    try:
        nets = legacy.load_network(resume)
    except (legacy.LegacyError, UnsafePickleError, OSError, ValueError) as e:
        raise UserError(f'Cannot resume from "{resume}": {e}') from None
    if nets.get('G') is None and nets.get('G_ema') is None:
        raise UserError(f'Cannot resume from "{resume}": it holds no generator (G or G_ema).')
    return nets

#----------------------------------------------------------------------------

@click.command()
# Required.
@click.option('--outdir',           help='Where to save the results', metavar='DIR',                        type=str, required=True)
@click.option('--data',             help='Training data (zip or folder)', metavar='[ZIP|DIR]',            type=str, required=True)
@click.option('--cfg',              help='Base configuration (resolution preset)',                        type=click.Choice(['auto', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar', 'tiny', 'cg-gan', 'istylegan']), default='auto', show_default=True)
@click.option('--model',            help='Model: plain StyleGAN2-ADA, i-StyleGAN or CG-GAN',              type=click.Choice(['stylegan2-ada', 'istylegan', 'cg-gan']), default=None, show_default='the model the options belong to, else stylegan2-ada; on --resume: the run\'s')
@click.option('--gpus',             help='Number of GPUs (processes) to use', metavar='INT',              type=click.IntRange(min=1), default=1, show_default=True)
# Optional features.
@click.option('--batch',            help='Total batch size [default: from --cfg]', metavar='INT',         type=click.IntRange(min=1))
@click.option('--batch-gpu',        help='Samples per pass and GPU (gradient accumulation below batch/gpus)', metavar='INT', type=click.IntRange(min=1))
@click.option('--gamma',            help='R1 regularization weight [default: from --cfg]', metavar='FLOAT', type=click.FloatRange(min=0))
@click.option('--cond',             help='Condition on domain labels [default: false; flow models: true]', metavar='BOOL', type=bool)
@click.option('--subset',           help='Train with only N images (a seeded subset) [default: all]', metavar='INT', type=click.IntRange(min=1))
@click.option('--mirror',           help='Enable dataset x-flips', metavar='BOOL',                        type=bool, default=False, show_default=True)
@click.option('--aug',              help='Augmentation mode',                                             type=click.Choice(['noaug', 'ada', 'fixed']), default='ada', show_default=True)
@click.option('--p',                help='Probability for --aug=fixed', metavar='FLOAT',                  type=click.FloatRange(min=0, max=1), default=0.2, show_default=True)
@click.option('--target',           help='Target value for --aug=ada', metavar='FLOAT',                   type=click.FloatRange(min=0, max=1), default=0.6, show_default=True)
@click.option('--ada-kimg',         help='ADA adjustment speed: kimg for p to go 0 -> 1 [default: 500; transfer: 100]', metavar='KIMG', type=click.FloatRange(min=0, min_open=True), default=500)
@click.option('--augpipe',          help='Augmentation pipeline',                                         type=click.Choice(['blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg', 'bgc', 'bgcf', 'bgcfn', 'bgcfnc']), default='bgc', show_default=True)
@click.option('--resume',           help='Resume: our snapshot (exact), NVIDIA/i-StyleGAN pickle (transfer), "latest", NVIDIA\'s ffhq256, ... or noresume', metavar='[PATH|URL|NAME]', type=str)
@click.option('--freezed',          help='Freeze-D: freeze the first N discriminator layers', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
# CG-GAN / i-StyleGAN.
@click.option('--cond-mode', '--cond_mode',          help='Domain conditioning of the mapping',                            type=click.Choice(['flow', 'mlp', 'concat']), default='flow', show_default=True)
@click.option('--i-dim', '--i_dim',                  help='Candidate domain-specific dims [default: 256, tiny: z_dim/2]', metavar='INT', type=click.IntRange(min=1))
@click.option('--flow-blocks', '--flow_blocks',      help='Dense sigmoid flow blocks', metavar='INT',                      type=click.IntRange(min=1), default=2, show_default=True)
@click.option('--flow-dim', '--flow_dim',            help='Hidden width of each flow block', metavar='INT',                type=click.IntRange(min=1), default=10, show_default=True)
@click.option('--flow-norm', '--flow_norm',          help='Normalise style and content dims separately', metavar='BOOL',   type=bool, default=True, show_default=True)
@click.option('--lambda-sparse', '--lambda_sparse',  help=f'Weight of the mask loss mean|r| [default: {presets.LAMBDA_SPARSE:g} for flow models]', metavar='FLOAT', type=click.FloatRange(min=0))
@click.option('--lambda-imgsparse', '--lambda_imgsparse', help=f'Weight of the Jacobian sparsity loss L_s = (1/HW) sum|d img/d x_k| (not the released code\'s units: docs/method.md) [default: {presets.LAMBDA_IMGSPARSE:g} for cg-gan]', metavar='FLOAT', type=click.FloatRange(min=0))
@click.option('--perturb-norm', '--perturb_norm',    help='Finite-difference step of the Jacobian estimate', metavar='FLOAT', type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option('--sparse-estimator', help='Jacobian estimator',                                            type=click.Choice(['fd', 'jvp']), default='fd', show_default=True)
@click.option('--sparse-columns',   help='Jacobian columns per step', metavar='INT',                      type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--sparse-interval',  help='Apply the Jacobian loss every N steps (weight x N) [default: 1, tiny: 4]', metavar='INT', type=click.IntRange(min=1))
@click.option('--concat-dim', '--concat_dim',        help='Label embedding size of the mapping [default: w_dim]', metavar='INT', type=click.IntRange(min=1))
# Misc hyperparameters.
@click.option('--cbase',            help='Capacity multiplier [default: from --cfg]', metavar='INT',      type=click.IntRange(min=1))
@click.option('--cmax',             help='Max. feature maps [default: from --cfg]', metavar='INT',        type=click.IntRange(min=1))
@click.option('--mbstd-group',      help='Minibatch-std group size [default: from --cfg]', metavar='INT', type=click.IntRange(min=1))
@click.option('--map-depth',        help='Mapping network depth [default: from --cfg]', metavar='INT',    type=click.IntRange(min=1))
@click.option('--glr',              help='G learning rate [default: from --cfg]', metavar='FLOAT',        type=click.FloatRange(min=0))
@click.option('--dlr',              help='D learning rate [default: from --cfg]', metavar='FLOAT',        type=click.FloatRange(min=0))
@click.option('--ema',              help='EMA half-life in kimg [default: from --cfg]', metavar='FLOAT',  type=click.FloatRange(min=0))
@click.option('--ema-rampup',       help='EMA ramp-up ratio, 0 = none [default: from --cfg; transfer: none]', metavar='FLOAT', type=click.FloatRange(min=0))
# Misc settings.
@click.option('--desc',             help='String to include in result dir name', metavar='STR',           type=str)
@click.option('--metrics',          help='Quality metrics', metavar='[NAME|A,B,C|none]',                  type=parse_comma_separated_list, default='fid50k_full', show_default=True)
@click.option('--kimg',             help='Total training duration [default: from --cfg]', metavar='KIMG', type=click.FloatRange(min=0, min_open=True))
@click.option('--tick',             help='How often to print progress', metavar='KIMG',                   type=click.FloatRange(min=0, min_open=True), default=4, show_default=True)
@click.option('--snap',             help='How often to save snapshots', metavar='TICKS',                  type=click.IntRange(min=1), default=50, show_default=True)
@click.option('--seed',             help='Random seed', metavar='INT',                                    type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--fp32',             help='Disable mixed-precision', metavar='BOOL',                       type=bool, default=False, show_default=True)
@click.option('--nhwc',             help='Use NHWC memory format with FP16', metavar='BOOL',              type=bool, default=False, show_default=True)
@click.option('--nobench',          help='Disable cuDNN benchmarking', metavar='BOOL',                    type=bool, default=False, show_default=True)
@click.option('--allow-tf32',       help='Allow PyTorch to use TF32 internally', metavar='BOOL',          type=bool, default=False, show_default=True)
@click.option('--fast',             help='GPU fast path: auto (CUDA only), off, fused (Triton ops, no compiling) or a torch.compile mode',  type=click.Choice(['auto', 'off', 'fused', 'default', 'reduce-overhead', 'max-autotune-no-cudagraphs', 'max-autotune']), default='off', show_default=True)
@click.option('--workers',          help='DataLoader worker processes [default: 3 on GPU, 0 on CPU]', metavar='INT', type=click.IntRange(min=0))
@click.option('-n', '--dry-run',    help='Print training options and exit',                               is_flag=True)
def main(**kwargs):
    """Train a GAN: StyleGAN2-ADA, i-StyleGAN or CG-GAN.

    \b
    # CG-GAN on AFHQ (three domains), one GPU:
    python train.py --outdir=runs --data=afhq-256.zip --cfg=auto --model=cg-gan --gpus=1
    \b
    # Eight GPUs on one machine (either form):
    python train.py --outdir=runs --data=afhq-256.zip --cfg=paper256 --model=istylegan --gpus=8
    torchrun --nproc_per_node=8 train.py --outdir=runs --data=afhq-256.zip --cfg=paper256 --model=istylegan
    \b
    # Continue the newest run exactly, or fine-tune from an i-StyleGAN pickle:
    python train.py --outdir=runs --data=afhq-256.zip --resume=latest
    python train.py --outdir=runs --data=afhq-256.zip --model=cg-gan --resume=istylegan-afhq.pkl
    """
    dnnlib.util.check_finite_options()
    opts = dnnlib.EasyDict(kwargs)
    dry_run = opts.pop('dry_run')
    ctx = click.get_current_context()
    explicit = {name for name in kwargs if ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)}
    try:
        if os.path.exists(opts.outdir) and not os.path.isdir(opts.outdir):
            raise UserError(f'--outdir "{opts.outdir}" is a file, not a folder; give a folder for the runs.')
        if opts.metrics:
            from metrics import metric_main
            bad = [m for m in opts.metrics if not metric_main.is_valid_metric(m)]
            if bad:
                raise UserError(f'Unknown metric {", ".join(bad)}; valid ones: {", ".join(metric_main.list_valid_metrics())}, or none.')
        if opts.resume is not None:
            from training import pretrained
            opts.resume = pretrained.resolve(opts.resume)   # NVIDIA's names (ffhq256, ...) -> URL; noresume -> None
        c, desc = build_config(opts, explicit)
        launch_training(c, desc=desc, outdir=opts.outdir, dry_run=dry_run)
    except Exception as e:
        if isinstance(e, user_errors()):
            raise click.ClickException(str(e)) from None
        raise

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------

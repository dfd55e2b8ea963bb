"""The training loop: phases with lazy regularisation, EMA, ADA, ticks, snapshots, exact resume.

Determinism by construction: the latents, labels and the torch RNG of every accumulation round are
seeded from (seed, step, phase, chunk of the global batch), and the real images of a step are a fixed
slice of a seeded per-epoch permutation. Hence 1 rank x 2 rounds computes the same step as 2 ranks x 1
round, and a resumed run continues exactly where the snapshot left it (on the same device type).

training_loop() reads in three parts, each a function with its inputs named: setup (_initialise to
_fetch_metric_weights, in an order that fixes what the seeded RNG gives each), one step (_fetch_step,
_train_step, _update_ema), once per tick (_stop_on_nonfinite, _tick_report, _save_network_snapshot,
_evaluate_metrics, _record_stats).
"""
import copy
import functools
import glob
import json
import os
import re
import time

import numpy as np
import PIL.Image
import torch

import dnnlib
from datasets.errors import DatasetError
from torch_utils import distributed, misc, training_stats

SNAPSHOT_RE = re.compile(r'network-snapshot-(\d{6})\.pt$')

#----------------------------------------------------------------------------

class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad resume file...); the message says what to do."""

#----------------------------------------------------------------------------

def _seed(*keys) -> int:
    """A 63-bit seed from a tuple of non-negative integers."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], np.uint64))


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Infinite index stream of one rank: global image position p = step * batch + (round * W + rank) * batch_gpu + t
    is dataset index perm_epoch[p % N] with a seeded permutation per epoch; starts at `start_nimg`."""

    def __init__(self, num_items, rank, num_ranks, batch_size, batch_gpu, seed=0, shuffle=True, start_nimg=0):
        assert batch_size % (batch_gpu * num_ranks) == 0 and start_nimg % batch_size == 0
        super().__init__()
        self.num_items, self.rank, self.num_ranks = num_items, rank, num_ranks
        self.batch_size, self.batch_gpu, self.seed, self.shuffle = batch_size, batch_gpu, seed, shuffle
        self.start_nimg = start_nimg
        self._perm = (None, None)

    def _index(self, pos):
        epoch = pos // self.num_items
        if self._perm[0] != epoch:
            order = np.random.RandomState(_seed(self.seed, epoch) % (1 << 32)).permutation(self.num_items) if self.shuffle else np.arange(self.num_items)
            self._perm = (epoch, order)
        return int(self._perm[1][pos % self.num_items])

    def __iter__(self):
        rounds = self.batch_size // (self.batch_gpu * self.num_ranks)
        step = self.start_nimg // self.batch_size
        while True:
            for r in range(rounds):
                base = step * self.batch_size + (r * self.num_ranks + self.rank) * self.batch_gpu
                for t in range(self.batch_gpu):
                    yield self._index(base + t)
            step += 1

#----------------------------------------------------------------------------

RUN_DIR_RE = re.compile(r'^(\d+)-')


def _snapshots_in(folder):
    return [p for p in glob.glob(os.path.join(glob.escape(folder), 'network-snapshot-*.pt')) if SNAPSHOT_RE.search(p)]


def find_latest_snapshot(folder):
    """The snapshot --resume=latest continues: the highest kimg in `folder` itself or, when it holds none, in
    its highest-numbered run folder (NNNNN-desc) that holds one. File times play no part."""
    runs = sorted(((int(m.group(1)), d) for d in (os.listdir(folder) if os.path.isdir(folder) else []) if (m := RUN_DIR_RE.match(d))), reverse=True)
    for candidate in [folder] + [os.path.join(folder, d) for _num, d in runs]:
        found = _snapshots_in(candidate)
        if found:
            return max(found, key=lambda p: int(SNAPSHOT_RE.search(p).group(1)))
    return None


def _plain(obj):
    """Options as plain JSON data (EasyDict -> dict), safe for torch.load(weights_only=True)."""
    return json.loads(json.dumps(obj))

#----------------------------------------------------------------------------

def setup_snapshot_image_grid(training_set, random_seed=0, gw=8, rows_per_domain=None):
    """Grid layout: one block of rows per domain (unconditional: one block). Returns (gw, gh), reals uint8, labels."""
    rnd = np.random.RandomState(random_seed)
    num_domains = training_set.label_dim if training_set.has_labels else 1
    rows = rows_per_domain if rows_per_domain is not None else max(8 // num_domains, 2)
    order = rnd.permutation(len(training_set))
    by_domain = dict()
    for idx in order:
        k = int(np.argmax(training_set.get_label(idx))) if training_set.has_labels else 0
        if len(by_domain.setdefault(k, [])) < gw * rows:
            by_domain[k].append(idx)
        if all(len(by_domain.get(j, [])) >= gw * rows for j in range(num_domains)):
            break
    images, labels = [], []
    for k in range(num_domains):
        idxs = by_domain.get(k, [])
        for i in range(gw * rows):
            image, _ = training_set[idxs[i % len(idxs)]] if idxs else training_set[order[i % len(order)]]
            images.append(image)
            label = np.zeros([training_set.label_dim], np.float32)
            if training_set.has_labels:
                label[k] = 1
            labels.append(label)
    return (gw, rows * num_domains), np.stack(images), np.stack(labels), rows


def save_image_grid(img, path, drange, grid_size):
    """Tile NCHW images (values in `drange`) into one PNG, written atomically."""
    lo, hi = drange
    img = np.asarray(img, dtype=np.float32)
    img = np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _N, C, H, W = img.shape
    img = img.reshape(gh, gw, C, H, W).transpose(0, 3, 1, 4, 2).reshape(gh * H, gw * W, C)
    image = PIL.Image.fromarray(img[:, :, 0], 'L') if C == 1 else PIL.Image.fromarray(img, 'RGB')
    with dnnlib.util.atomic_write(path) as f:
        image.save(f, format='PNG')


def generate_grid(G_ema, grid_z, grid_c, batch_gpu):
    with torch.no_grad():
        return torch.cat([G_ema(z=z, c=c, noise_mode='const').cpu() for z, c in zip(grid_z.split(batch_gpu), grid_c.split(batch_gpu))]).numpy()

#----------------------------------------------------------------------------

def _reduce_grads(params, num_ranks):
    """Average gradients over ranks in one flat all-reduce; NVIDIA's clamp of non-finite gradients."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return False
    flat = torch.cat([p.grad.flatten() for p in params])
    if num_ranks > 1:
        torch.distributed.all_reduce(flat)
        flat /= num_ranks
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.reshape(p.shape))
    return True


def _active_dims(module):
    mapping = getattr(module, 'mapping', None)
    if mapping is not None and hasattr(mapping, 'num_active') and getattr(mapping, 'has_importance', True):
        return int(mapping.num_active())
    return None

#----------------------------------------------------------------------------

def training_loop(
    run_dir                 = '.',      # Output directory.
    training_set_kwargs     = {},       # Options for the training set.
    data_loader_kwargs      = {},       # Options for torch.utils.data.DataLoader.
    G_kwargs                = {},       # Options for the generator network.
    D_kwargs                = {},       # Options for the discriminator network.
    G_opt_kwargs            = {},       # Options for the generator optimizer.
    D_opt_kwargs            = {},       # Options for the discriminator optimizer.
    augment_kwargs          = None,     # Options for the augmentation pipeline, None = disable.
    loss_kwargs             = {},       # Options for the loss function.
    metrics                 = [],       # Metrics to evaluate during training.
    random_seed             = 0,        # Global random seed.
    num_gpus                = 1,        # Number of ranks (processes) taking part.
    rank                    = 0,        # Rank of this process in [0, num_gpus).
    device                  = 'cpu',    # Device of this rank.
    batch_size              = 4,        # Total batch size for one training iteration.
    batch_gpu               = 4,        # Samples per pass on one rank (gradient accumulation below batch_size / num_gpus).
    ema_kimg                = 10,       # Half-life of the EMA of generator weights.
    ema_rampup              = 0.05,     # EMA ramp-up coefficient, None = no ramp-up.
    G_reg_interval          = 4,        # How often to perform regularisation for G, None = no lazy regularisation.
    D_reg_interval          = 16,       # How often to perform regularisation for D, None = no lazy regularisation.
    augment_p               = 0,        # Initial value of the augmentation probability.
    ada_target              = None,     # ADA target value, None = fixed p.
    ada_interval            = 4,        # How often to adjust p (steps).
    ada_kimg                = 500,      # ADA adjustment speed: kimg for p to go 0 -> 1.
    total_kimg              = 25000,    # Total length of the training, in thousands of real images.
    kimg_per_tick           = 4,        # Progress snapshot interval.
    image_snapshot_ticks    = 50,       # How often to save image grids, None = disable.
    network_snapshot_ticks  = 50,       # How often to save network snapshots, None = disable.
    resume_pkl              = None,     # Transfer: start from these weights (NVIDIA / i-StyleGAN pickle or our snapshot).
    resume_snapshot         = None,     # Exact resume: continue the run stored in this snapshot of ours.
    options                 = None,     # The run's options (saved in snapshots for exact resume).
    cudnn_benchmark         = True,     # Enable torch.backends.cudnn.benchmark?
    allow_tf32              = True,     # Allow TF32 matmul/convolutions on CUDA?
    fast                    = 'off',    # GPU fast path: 'auto' (CUDA only), 'off' or a torch.compile mode, see training.fast_path.
    max_steps               = None,     # Stop after this many steps of this process (tests), None = run to total_kimg.
    progress_fn             = None,     # Callback(cur_nimg, total_nimg) each step.
    log_fn                  = print,    # Where the progress lines go (rank 0 only).
):
    start_time = time.time()
    device = torch.device(device)
    is_main = rank == 0
    log = log_fn if is_main else (lambda *args, **kwargs: None)
    assert batch_size % (batch_gpu * num_gpus) == 0, 'batch_size must be a multiple of batch_gpu * num_gpus'
    num_rounds = batch_size // (batch_gpu * num_gpus)
    _initialise(random_seed, cudnn_benchmark, allow_tf32, run_dir if is_main else None)
    state = _read_resume_state(resume_snapshot, log)
    build = functools.partial(_build, resume_snapshot)
    training_set, batches = _open_training_set(build, training_set_kwargs, data_loader_kwargs, rank, num_gpus, batch_size, batch_gpu,
                                               random_seed, int(state['cur_nimg']) if state is not None else 0, log)
    G, D, G_ema = _build_networks(build, G_kwargs, D_kwargs, training_set, device, state, resume_pkl, log)
    if is_main:
        _print_summaries(G_ema, D, batch_gpu, device, log)
    if num_gpus > 1:
        _broadcast((G, D, G_ema), device)
    augment_pipe, ada = _build_augment(build, augment_kwargs, augment_p, ada_target, ada_interval, ada_kimg, batch_size, state, device)
    loss, phases = _build_phases(build, device, G, D, augment_pipe, ada, loss_kwargs, fast, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, log)
    cur_nimg, cur_tick, batch_idx = _restore_run_state(state, phases, loss, ada, rank, device, resume_snapshot)
    total_nimg = int(round(total_kimg * 1000))
    grid = _start_image_grid(training_set, G_ema, random_seed, batch_gpu, device, run_dir, fresh=state is None) if is_main else None
    stats = _open_stats(run_dir if is_main else None, log)
    _fetch_metric_weights(metrics, is_main)

    # Train: one step per pass; once per tick (and at the end) the status line, snapshots, metrics and statistics.
    log(f'Training for {total_kimg} kimg...')
    tick = dnnlib.EasyDict(start_nimg=cur_nimg, start_time=time.time())
    tick.maintenance = tick.start_time - start_time
    done = cur_nimg >= total_nimg
    steps_here = 0
    last_snapshot = find_latest_snapshot(run_dir)
    last_metrics = []                       # the lines of the last evaluation, repeated at the end of the run
    skipped_metrics = set()                 # metrics whose weights are missing: one warning per run
    label_pool = _label_pool(training_set)
    chunks = [j * num_gpus + rank for j in range(num_rounds)]  # this rank's slices of the global batch
    while not done:
        step_inputs = _fetch_step(batches, device, batch_gpu, len(phases), batch_size, G.z_dim, label_pool, chunks, random_seed, batch_idx)
        _train_step(phases, loss, step_inputs, chunks, random_seed, batch_idx, num_rounds, num_gpus)
        _update_ema(G_ema, G, ema_kimg, ema_rampup, cur_nimg, batch_size)
        cur_nimg += batch_size
        batch_idx += 1
        steps_here += 1
        if progress_fn is not None:
            progress_fn(cur_nimg, total_nimg)
        if ada is not None:                 # the controller moves p on every `ada_interval`-th call
            ada.update(augment_pipe, cur_nimg)
        done = cur_nimg >= total_nimg or (max_steps is not None and steps_here >= max_steps)
        if not done and cur_tick != 0 and cur_nimg < tick.start_nimg + kimg_per_tick * 1000:
            continue

        _stop_on_nonfinite(loss, device, num_gpus, last_snapshot, cur_tick, cur_nimg)
        tick.end_time = time.time()
        log(_tick_report(cur_tick, cur_nimg, start_time, tick, device, augment_pipe, G, G_ema))
        if is_main and image_snapshot_ticks is not None and (done or cur_tick % image_snapshot_ticks == 0):
            grid.save(os.path.join(run_dir, f'fakes{cur_nimg // 1000:06d}.png'))
        snapshot_path = None
        if network_snapshot_ticks is not None and (done or cur_tick % network_snapshot_ticks == 0):
            snapshot_path = os.path.join(run_dir, f'network-snapshot-{cur_nimg // 1000:06d}.pt')
            if is_main:
                _save_network_snapshot(snapshot_path, G, D, G_ema, phases, loss, augment_pipe, ada, training_set, training_set_kwargs, options,
                                       cur_nimg=cur_nimg, cur_tick=cur_tick + 1, batch_idx=batch_idx)
                last_snapshot = snapshot_path
            distributed.barrier()
        metric_results = {}
        if snapshot_path is not None and len(metrics) > 0:
            metric_results, lines = _evaluate_metrics(metrics, G_ema, training_set_kwargs, num_gpus, rank, device, run_dir, snapshot_path, log, skipped_metrics)
            last_metrics = lines or last_metrics
        _record_stats(stats, metric_results, cur_nimg, start_time)
        cur_tick += 1
        tick.start_nimg, tick.start_time = cur_nimg, time.time()
        tick.maintenance = tick.start_time - tick.end_time

    _close_stats(stats)
    log(f'Final snapshot:      {last_snapshot if last_snapshot else "none written (--snap is longer than the run)"}')
    if last_metrics:
        log(f'Last metrics:        {"; ".join(last_metrics)}')
    log(f'Elapsed time:        {dnnlib.util.format_time(time.time() - start_time)} ({cur_nimg / 1000:g} kimg, {steps_here} steps in this process)')
    log('Exiting...')
    return dnnlib.EasyDict(G=G, D=D, G_ema=G_ema, G_opt=phases[0].opt, D_opt=phases[-1].opt, loss=loss, cur_nimg=cur_nimg, batch_idx=batch_idx, last_snapshot=last_snapshot,
                           augment_p=float(augment_pipe.p.cpu()) if augment_pipe is not None else 0.0)

#----------------------------------------------------------------------------
# Setup phases, in the order training_loop calls them (the order fixes what the seeded RNG gives each).

def _initialise(random_seed, cudnn_benchmark, allow_tf32, run_dir):
    """Seeds (the same initial weights on every rank, broadcast later anyway), backend flags, the statistics
    and the run folder (rank 0 passes it, the others None)."""
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    training_stats.reset()
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)


def _read_resume_state(resume_snapshot, log):
    """The run state of an exact resume (read before the data loader, which starts at its image position), or None."""
    if resume_snapshot is None:
        return None
    from torch_utils.snapshot import load_snapshot
    log(f'Resuming exactly from "{resume_snapshot}"')
    return load_snapshot(resume_snapshot, device='cpu')


def _open_training_set(build, training_set_kwargs, data_loader_kwargs, rank, num_gpus, batch_size, batch_gpu, random_seed, start_nimg, log):
    """(training set, iterator over this rank's reals of each step), starting at image `start_nimg`."""
    log('Loading training set...')
    training_set = build(**training_set_kwargs)
    sampler = GlobalBatchSampler(len(training_set), rank, num_gpus, batch_size, batch_gpu, seed=random_seed, start_nimg=start_nimg)
    loader_kwargs = dict(data_loader_kwargs)
    if loader_kwargs.get('num_workers', 0) == 0:
        loader_kwargs.pop('prefetch_factor', None)
        loader_kwargs.pop('persistent_workers', None)
    batches = iter(torch.utils.data.DataLoader(dataset=training_set, sampler=sampler, batch_size=batch_size // num_gpus, **loader_kwargs))
    log(f'Num images: {len(training_set)}, image shape: {training_set.image_shape}, label shape: {training_set.label_shape}')
    return training_set, batches


def _build_networks(build, G_kwargs, D_kwargs, training_set, device, state, resume_pkl, log):
    """G, D, G_ema for the training set, with the weights of the run being resumed or of the transfer source."""
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution, img_channels=training_set.num_channels)
    G = build(**G_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    D = build(**D_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    if state is not None:
        for name, module in [('G', G), ('D', D), ('G_ema', G_ema)]:
            try:
                misc.copy_params_and_buffers(state[name], module, require_all=True)
            except (KeyError, RuntimeError) as e:
                raise TrainingError(f'The snapshot\'s {name} does not match the configured network ({e}); resume with the options stored in the snapshot.') from None
    elif resume_pkl is not None:
        log(f'Starting from the weights in "{resume_pkl}" (transfer: new run, counters reset)')
        resume_data = load_weights(resume_pkl)
        for name, module in [('G', G), ('D', D), ('G_ema', G_ema)]:
            if resume_data.get(name) is not None:
                copied, skipped = misc.copy_matching_params_and_buffers(resume_data[name], module)
                log(f'  {name}: {copied} tensors copied' + (f', {len(skipped)} kept fresh (absent or another shape: {", ".join(skipped[:4])}{", ..." if len(skipped) > 4 else ""})' if skipped else ''))
    return G, D, G_ema


def _print_summaries(G_ema, D, batch_gpu, device, log):
    """NVIDIA's summary tables of G and D, on G_ema and a copy of D: training state and RNG stay as they were."""
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        z = torch.zeros([batch_gpu, G_ema.z_dim], device=device)
        c = torch.zeros([batch_gpu, G_ema.c_dim], device=device)
        img = misc.print_module_summary(G_ema, [z, c], print_fn=log)
        misc.print_module_summary(copy.deepcopy(D), [img, c], print_fn=log)


def _broadcast(modules, device):
    """Every rank starts from rank 0's parameters and buffers."""
    for module in modules:
        for tensor in misc.params_and_buffers(module):
            torch.distributed.broadcast(tensor.data if tensor.device == device else tensor, src=0)


def _build_augment(build, augment_kwargs, augment_p, ada_target, ada_interval, ada_kimg, batch_size, state, device):
    """(augment pipe or None, ADA controller or None); an exact resume under ADA continues from the stored p."""
    if augment_kwargs is None or not (augment_p > 0 or ada_target is not None):
        return None, None
    augment_pipe = build(**augment_kwargs).train().requires_grad_(False).to(device)
    augment_pipe.p.copy_(torch.as_tensor(augment_p))
    ada = None
    if ada_target is not None:
        from training.augment import AdaController
        ada = AdaController(target=ada_target, interval=ada_interval, kimg=ada_kimg, batch_size=batch_size)
        if state is not None and state.get('augment_p') is not None:   # fixed p: the configured value
            augment_pipe.p.copy_(torch.as_tensor(float(state['augment_p'])))
    return augment_pipe, ada


def _build_phases(build, device, G, D, augment_pipe, ada, loss_kwargs, fast, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, log):
    """(loss, phases): Gmain/Greg/Dmain/Dreg with lazy regularisation, which scales lr and betas by
    c = interval / (interval + 1) (StyleGAN2 App. C), or Gboth/Dboth without it."""
    loss = build(device=device, G=G, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    if ada is not None:
        loss.real_sign_hook = ada.accumulate
    from training import fast_path
    fast_config = fast_path.apply_to_loss(loss, fast)
    if fast_config.enabled:
        log(f'Fast path: compile={fast_config.compile}, fused_ops={fast_config.fused_ops}, channels_last={fast_config.channels_last} (R1/path length stay eager).')
    phases = []
    for name, module, opt_kwargs, reg_interval in [('G', G, G_opt_kwargs, G_reg_interval), ('D', D, D_opt_kwargs, D_reg_interval)]:
        if reg_interval is None:
            opt = build(params=module.parameters(), **opt_kwargs)
            phases += [dnnlib.EasyDict(name=name + 'both', module=module, opt=opt, interval=1)]
        else:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt_kwargs = dnnlib.EasyDict(opt_kwargs)
            opt_kwargs.lr = opt_kwargs.lr * mb_ratio
            if 'betas' in opt_kwargs:
                opt_kwargs.betas = [beta ** mb_ratio for beta in opt_kwargs.betas]
            opt = build(params=module.parameters(), **opt_kwargs)
            phases += [dnnlib.EasyDict(name=name + 'main', module=module, opt=opt, interval=1)]
            phases += [dnnlib.EasyDict(name=name + 'reg', module=module, opt=opt, interval=reg_interval)]
    return loss, phases


def _restore_run_state(state, phases, loss, ada, rank, device, resume_snapshot):
    """(cur_nimg, cur_tick, batch_idx): zeros on a fresh run; on an exact resume the optimiser moments, loss
    and ADA state and the RNG come back too. The run state comes from a file: any malformed part is one sentence."""
    if state is None:
        return 0, 0, 0
    try:
        for phase, key in ((phases[0], 'G_opt'), (phases[-1], 'D_opt')):
            configured = [dict(lr=g['lr'], betas=g.get('betas')) for g in phase.opt.param_groups]
            phase.opt.load_state_dict(state[key])
            for group, conf in zip(phase.opt.param_groups, configured):   # moments from the run, lr and betas as configured now
                group.update({k: v for k, v in conf.items() if v is not None})
        if 'loss' in state:
            loss.load_state_dict(state['loss'])
        if ada is not None and 'ada' in state:
            ada.num_steps = int(state['ada']['num_steps'])
            ada._acc = state['ada']['acc'].to(device) if state['ada'].get('acc') is not None else None
        counters = int(state['cur_nimg']), int(state['cur_tick']), int(state['batch_idx'])
        if 'torch_rng' in state and rank == 0:
            torch.set_rng_state(state['torch_rng'])
            name, keys, pos, has_gauss, cached = state['numpy_rng']
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
        raise TrainingError(f'The run state in "{resume_snapshot}" is malformed ({type(e).__name__}: {str(e)[:160]}); '
                            f'resume from another snapshot.') from None
    return counters


def _start_image_grid(training_set, G_ema, random_seed, batch_gpu, device, run_dir, fresh):
    """Rank 0: writes reals.png (one block of rows per domain) and, on a fresh run, fakes_init.png; returns
    the grid, whose save(path) renders G_ema on the same latents (the same in every domain block)."""
    grid_size, images, labels, rows = setup_snapshot_image_grid(training_set, random_seed=random_seed)
    save_image_grid(images, os.path.join(run_dir, 'reals.png'), drange=[0, 255], grid_size=grid_size)
    gen = torch.Generator().manual_seed(_seed(random_seed, 1 << 30))
    z_block = torch.randn([grid_size[0] * rows, G_ema.z_dim], generator=gen)
    grid_z = z_block.repeat(grid_size[1] // rows, 1).to(device)
    grid_c = torch.from_numpy(labels).to(device)
    grid = dnnlib.EasyDict(save=lambda path: save_image_grid(generate_grid(G_ema, grid_z, grid_c, batch_gpu), path, drange=[-1, 1], grid_size=grid_size))
    if fresh:
        grid.save(os.path.join(run_dir, 'fakes_init.png'))
    return grid


def _open_stats(run_dir, log):
    """The statistics collector (every rank: it reduces over ranks) and, on rank 0 (run_dir given), stats.jsonl
    and TensorBoard's event file when tensorboard is installed."""
    stats = dnnlib.EasyDict(collector=training_stats.Collector(regex='.*'), jsonl=None, tfevents=None)
    if run_dir is not None:
        stats.jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
        try:
            import torch.utils.tensorboard as tensorboard
            stats.tfevents = tensorboard.SummaryWriter(run_dir)
        except ImportError as err:
            log(f'Skipping tfevents export: {err}')
    return stats


def _fetch_metric_weights(metrics, is_main):
    """Download the weights the metrics need (online only; failures warn at the first snapshot)."""
    if metrics:
        if is_main:
            from metrics import metric_main
            metric_main.fetch_weights(metrics)
        distributed.barrier()


def _label_pool(training_set):
    """The labels the latents of a step draw from (one per image), or None for an unconditional set."""
    if training_set.label_dim == 0:
        return None
    return np.stack([training_set.get_label(i) for i in range(len(training_set))]).astype(np.float32)

#----------------------------------------------------------------------------
# One step.

def _fetch_step(batches, device, batch_gpu, num_phases, batch_size, z_dim, label_pool, chunks, random_seed, batch_idx):
    """This rank's reals (all rounds of the step) and, per phase, its slices of the global latents and labels:
    (real_img, real_c, gen_z, gen_c), each split in rounds of batch_gpu."""
    with torch.autograd.profiler.record_function('data_fetch'):
        try:
            real_img, real_c = next(batches)
        except DatasetError as e:  # a corrupt image inside the data set (raised here or in a loader worker)
            raise TrainingError(str(e).strip().splitlines()[-1].split('DatasetError: ')[-1]) from None
        real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
        real_c = real_c.to(device).to(torch.float32).split(batch_gpu)
        gen = torch.Generator().manual_seed(_seed(random_seed, batch_idx, 1))
        all_gen_z = torch.randn([num_phases, batch_size, z_dim], generator=gen)
        if label_pool is not None:
            rnd = np.random.RandomState(_seed(random_seed, batch_idx, 2) % (1 << 32))
            all_gen_c = torch.from_numpy(label_pool[rnd.randint(len(label_pool), size=num_phases * batch_size)]).reshape(num_phases, batch_size, -1)
        else:
            all_gen_c = torch.zeros([num_phases, batch_size, 0])
        gen_z = [[z[k * batch_gpu:(k + 1) * batch_gpu].to(device) for k in chunks] for z in all_gen_z]
        gen_c = [[c[k * batch_gpu:(k + 1) * batch_gpu].to(device) for k in chunks] for c in all_gen_c]
    return real_img, real_c, gen_z, gen_c


def _train_step(phases, loss, step_inputs, chunks, random_seed, batch_idx, num_rounds, num_gpus):
    """Every phase due at this step: accumulate over the rounds, reduce over ranks, one optimiser step."""
    real_img, real_c, all_gen_z, all_gen_c = step_inputs
    for phase_idx, (phase, phase_gen_z, phase_gen_c) in enumerate(zip(phases, all_gen_z, all_gen_c)):
        if batch_idx % phase.interval != 0:
            continue
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        for chunk, img, c, gen_z, gen_c in zip(chunks, real_img, real_c, phase_gen_z, phase_gen_c):
            torch.manual_seed(_seed(random_seed, batch_idx, 3, phase_idx, chunk))  # noise, mixing, augment, PL noise
            loss.accumulate_gradients(phase=phase.name, real_img=img, real_c=c, gen_z=gen_z, gen_c=gen_c,
                                      gain=phase.interval / num_rounds, cur_step=batch_idx)
        phase.module.requires_grad_(False)
        loss.finish_phase(phase.name)
        with torch.autograd.profiler.record_function(phase.name + '_opt'):
            if _reduce_grads(phase.module.parameters(), num_gpus):
                phase.opt.step()


def _update_ema(G_ema, G, ema_kimg, ema_rampup, cur_nimg, batch_size):
    """beta = 0.5 ** (batch / ema_nimg), ema_nimg ramped up as min(ema_nimg, cur_nimg * ema_rampup); buffers copied."""
    with torch.autograd.profiler.record_function('Gema'):
        ema_nimg = ema_kimg * 1000
        if ema_rampup is not None:
            ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
        ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, ema_beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)

#----------------------------------------------------------------------------
# Once per tick.

def _stop_on_nonfinite(loss, device, num_gpus, last_snapshot, cur_tick, cur_nimg):
    """NaN/Inf in a loss: stop before writing anything from this tick (checked on every rank together)."""
    bad = loss.pop_nonfinite()
    flags = torch.tensor([float(name in bad) for name in StyleGAN2_PHASES], device=device)
    if num_gpus > 1:
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    if flags.any():
        names = [name for name, f in zip(StyleGAN2_PHASES, flags.tolist()) if f]
        where = (f'the last good snapshot is "{last_snapshot}". Lower --glr/--dlr or --gamma, or check the data, then resume from it'
                 if last_snapshot else 'no snapshot was written yet. Lower --glr/--dlr or --gamma, or check the data, then start again')
        raise TrainingError(f'Loss became NaN or Inf in phase {", ".join(names)} during tick {cur_tick} (kimg {cur_nimg / 1000:.1f}); '
                            f'stopping, {where}.')


def _tick_report(cur_tick, cur_nimg, start_time, tick, device, augment_pipe, G, G_ema):
    """NVIDIA's status line of a tick (each field also reported to the statistics)."""
    tick_sec = tick.end_time - tick.start_time
    fields = []
    fields += [f"tick {training_stats.report0('Progress/tick', cur_tick):<5d}"]
    fields += [f"kimg {training_stats.report0('Progress/kimg', cur_nimg / 1e3):<8.1f}"]
    fields += [f"time {dnnlib.util.format_time(training_stats.report0('Timing/total_sec', tick.end_time - start_time)):<12s}"]
    fields += [f"sec/tick {training_stats.report0('Timing/sec_per_tick', tick_sec):<7.1f}"]
    fields += [f"sec/kimg {training_stats.report0('Timing/sec_per_kimg', tick_sec / max(cur_nimg - tick.start_nimg, 1) * 1e3):<7.2f}"]
    fields += [f"maintenance {training_stats.report0('Timing/maintenance_sec', tick.maintenance):<6.1f}"]
    if device.type == 'cuda':
        fields += [f"gpumem {training_stats.report0('Resources/peak_gpu_mem_gb', torch.cuda.max_memory_allocated(device) / 2**30):<6.2f}"]
        torch.cuda.reset_peak_memory_stats()
    else:
        fields += [f"cpumem {training_stats.report0('Resources/cpu_mem_gb', _rss_gb()):<6.2f}"]
    fields += [f"augment {training_stats.report0('Progress/augment', float(augment_pipe.p.cpu()) if augment_pipe is not None else 0):.3f}"]
    active = (_active_dims(G), _active_dims(G_ema))
    if active[0] is not None:
        training_stats.report0('Progress/active_dims', active[1])
        fields += [f'active style dims: G={active[0]} G_ema={active[1]}']
    return ' '.join(fields)


def _save_network_snapshot(path, G, D, G_ema, phases, loss, augment_pipe, ada, training_set, training_set_kwargs, options, cur_nimg, cur_tick, batch_idx):
    """Rank 0 (parameters are identical on every rank): networks, optimisers, loss and ADA state, counters, RNG and
    options, all an exact resume needs; cur_tick is the tick the resumed run starts with."""
    from torch_utils.snapshot import save_snapshot
    data = dict(G=G, D=D, G_ema=G_ema, G_opt=phases[0].opt.state_dict(), D_opt=phases[-1].opt.state_dict(),
                loss=loss.state_dict(), cur_nimg=cur_nimg, cur_tick=cur_tick, batch_idx=batch_idx,
                augment_p=float(augment_pipe.p.cpu()) if augment_pipe is not None else 0.0,
                torch_rng=torch.get_rng_state(), numpy_rng=_plain_rng(np.random.get_state()),
                training_set_kwargs=_plain(training_set_kwargs), options=_plain(options) if options is not None else None,
                domain_names=list(getattr(training_set, 'domain_names', None) or []) or None)  # generate.py --domain NAME, grid headers
    if augment_pipe is not None:
        data['augment_pipe'] = augment_pipe
    if ada is not None:
        data['ada'] = dict(num_steps=ada.num_steps, acc=ada._acc.cpu() if ada._acc is not None else None)
    save_snapshot(path, data)


def _record_stats(stats, metric_results, cur_nimg, start_time):
    """The tick's statistics (every rank reduces) into stats.jsonl and TensorBoard (rank 0)."""
    stats.collector.update()
    stats_dict = stats.collector.as_dict()
    timestamp = time.time()
    if stats.jsonl is not None:
        stats.jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
        stats.jsonl.flush()
    if stats.tfevents is not None:
        global_step = int(cur_nimg / 1e3)
        walltime = timestamp - start_time
        for name, value in stats_dict.items():
            stats.tfevents.add_scalar(name, value.mean, global_step=global_step, walltime=walltime)
        for name, value in metric_results.items():  # NVIDIA's TensorBoard names
            stats.tfevents.add_scalar(f'Metrics/{name}', value, global_step=global_step, walltime=walltime)
        stats.tfevents.flush()


def _close_stats(stats):
    for f in (stats.jsonl, stats.tfevents):
        if f is not None:
            f.close()

#----------------------------------------------------------------------------

StyleGAN2_PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')


def _rss_gb():
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    except ImportError:
        return float('nan')


def _plain_rng(state):
    name, keys, pos, has_gauss, cached = state
    return [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _build(resume_snapshot, **kwargs):
    """construct_class_by_name; on an exact resume the settings come from the snapshot, so settings that
    a constructor rejects are one sentence (on a fresh run they come from the code: keep the traceback)."""
    try:
        return dnnlib.util.construct_class_by_name(**kwargs)
    except (TypeError, ValueError) as e:
        if resume_snapshot is None:
            raise
        raise TrainingError(f'The {kwargs.get("class_name")} settings stored in "{resume_snapshot}" do not fit this code '
                            f'({type(e).__name__}: {str(e)[:160]}); resume from another snapshot.') from None


def load_weights(path):
    """Networks from one of our snapshots (.pt) or an NVIDIA / i-StyleGAN pickle: {'G', 'D', 'G_ema', ...}."""
    if str(path).endswith('.pt'):
        from torch_utils.snapshot import load_snapshot
        return load_snapshot(path, device='cpu')
    import legacy
    with dnnlib.util.open_url(path) as f:
        return legacy.load_network_pkl(f)


def _evaluate_metrics(metrics, G_ema, dataset_kwargs, num_gpus, rank, device, run_dir, snapshot_path, log, skipped=None):
    """Compute and record `metrics` for one snapshot; returns ({result name: value}, printed lines) (rank 0). A metric that
    cannot run (missing weights) is named once in a warning and added to `skipped`, which later snapshots leave out."""
    from metrics import metric_main
    skipped = set() if skipped is None else skipped
    results, lines = {}, []
    for metric in metrics:
        if metric in skipped:
            continue
        try:
            with metric_main.weights.environment_only():
                result_dict = metric_main.calc_metric(metric=metric, G=G_ema, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus, rank=rank, device=device)
        except metric_main.MetricUnavailableError as e:
            log(f'Warning: metric {metric} skipped for the rest of this run: {e}')
            skipped.add(metric)
            continue
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=run_dir, snapshot_pkl=snapshot_path, verbose=False)
            lines.append(metric_main.format_result(result_dict))
            log(lines[-1])
            results.update(result_dict.results)
    return results, lines

#----------------------------------------------------------------------------

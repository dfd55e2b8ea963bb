"""Compute FID/KID (and per-domain FID) of one or many network snapshots against a dataset.

Prints one Markdown table (rows = networks, columns = metrics) and appends one JSON line per result
to `metric-<name>.jsonl` next to each snapshot (or in --jsonl-dir). Examples:

    python calc_metrics.py --metrics=fid50k_full,kid50k_full --data=~/datasets/afhq-256.zip \\
        --network=runs/00000-cggan/network-snapshot-025000.pt --network=istylegan-afhq.pkl
    python calc_metrics.py --metrics=fid50k_domain --run=runs/00000-cggan     # every snapshot of a run
"""
import copy
import glob
import os
import re

import click
import torch

import dnnlib
from torch_utils import allowlist

#----------------------------------------------------------------------------

class UserError(Exception):
    """A problem with the command line or the inputs; shown as one sentence without a traceback."""

SNAPSHOT_RE = re.compile(r'network-snapshot-(\d+)\.(pt|pkl)$')

#----------------------------------------------------------------------------

def expand_networks(networks, runs):
    """Snapshot paths/URLs in the order given: globs expanded, runs listed by training progress (kimg)."""
    out = []
    for spec in networks:
        if '://' in spec:
            out.append(spec)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec)))
            if not matches:
                raise UserError(f'--network={spec} matches no file; check the pattern (quote it so the shell does not expand it).')
            out += matches
        else:
            if not os.path.isfile(os.path.expanduser(spec)):
                raise UserError(f'--network={spec} does not exist; pass a network-snapshot-*.pt or *.pkl file, a URL or a glob.')
            out.append(os.path.expanduser(spec))
    for run in runs:
        if not os.path.isdir(run):
            raise UserError(f'--run={run} is not a folder; pass a training run directory holding network-snapshot-*.pt files.')
        snaps = [p for p in glob.glob(os.path.join(run, 'network-snapshot-*')) if SNAPSHOT_RE.search(p)]
        if not snaps:
            raise UserError(f'--run={run} holds no network-snapshot-*.pt or *.pkl file; has the run written a snapshot yet?')
        out += sorted(snaps, key=lambda p: (int(SNAPSHOT_RE.search(p).group(1)), p))
    if not out:
        raise UserError('No network given: pass --network=PATH (repeatable, globs allowed) or --run=DIR.')
    return out


def load_network(path):
    """(G_ema, training_set_kwargs or None, model) through the safe reader (our .pt snapshots, NVIDIA/i-StyleGAN pickles);
    model: the --model of the run options stored in our snapshots, else what the generator's mapping shows."""
    import legacy
    from training import resume
    try:
        data = legacy.load_network(path)
    except FileNotFoundError:
        raise UserError(f'{path} does not exist; pass an existing snapshot.') from None
    except (ValueError, OSError, __import__('pickle').UnpicklingError) as e:
        raise UserError(f'Cannot read {path}: {e}') from None
    if data.get('G_ema') is None:
        raise UserError(f'{path} holds no G_ema network; pass a generator snapshot.')
    options = data.get('options')
    model = resume.model_of(options) if isinstance(options, dict) else resume.net_model(data)
    return data['G_ema'], data.get('training_set_kwargs'), model


def dataset_kwargs_for(data, data_class, G, training_set_kwargs, network, mirror=None):
    """NVIDIA's rule: --data wins, else the dataset the snapshot was trained on; labels iff G is conditional;
    x-flips from --mirror, else from the snapshot (NVIDIA's *_full metrics, like ours, read reals unflipped)."""
    if data is not None:
        kwargs = dnnlib.EasyDict(class_name=data_class, path=data)
    elif training_set_kwargs:
        kwargs = dnnlib.EasyDict(copy.deepcopy(dict(training_set_kwargs)))
        kwargs.setdefault('class_name', data_class)
        try:  # the snapshot names the data set: only an allow-listed class, plain values
            allowlist.check_spec('dataset', kwargs, f'{network}: training_set_kwargs')
        except allowlist.RefusedError as e:
            raise UserError(str(e)) from None
        path = str(kwargs.get('path', ''))
        if not os.path.exists(path):
            raise UserError(f'{network} was trained on {kwargs.get("path")}, which is not here; pass --data=PATH.')
        if not (os.path.isfile(path) and path.lower().endswith('.zip')) and not os.path.isfile(os.path.join(path, 'dataset.json')):
            raise UserError(f'{network} names {path} as its data set, which is neither a .zip nor a folder with dataset.json; pass --data=PATH.')
    else:
        raise UserError(f'{network} does not say which dataset it was trained on; pass --data=PATH.')
    kwargs.resolution = G.img_resolution
    kwargs.use_labels = G.c_dim != 0
    if mirror is not None:
        kwargs.xflip = bool(mirror)
    return kwargs

def _input_errors():
    """Exceptions that mean bad inputs (dataset, network), not a bug."""
    try:
        from datasets.errors import DatasetError
    except ImportError:
        return (ValueError,)
    return (ValueError, DatasetError)

#----------------------------------------------------------------------------

def column_name(key, mode):
    """Table header of a result: its name and, for FID/KID-style numbers, the mode they were computed in."""
    return f'{key} ({mode})' if mode else key


def markdown_table(rows, caption=None):
    """rows: list of (network name, {column: value}); columns in order of first appearance."""
    columns = []
    for _name, results in rows:
        columns += [k for k in results if k not in columns]
    lines = ['| network | ' + ' | '.join(columns) + ' |', '|---|' + '---:|' * len(columns)]
    for name, results in rows:
        cells = [f'{results[c]:.4g}' if c in results else '' for c in columns]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    if caption:
        lines += ['', caption]
    return '\n'.join(lines)


def display_name(path):
    if '://' in path:
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith('..') else rel

#----------------------------------------------------------------------------

def evaluate(rank, opts):
    """Every network x every metric on this rank; rank 0 reports and returns the table rows."""
    from metrics import metric_main
    from torch_utils import distributed
    device = distributed.init('cuda' if opts.num_gpus > 0 else 'cpu') if opts.num_gpus > 1 else \
        (torch.device('cuda', 0) if opts.num_gpus == 1 else torch.device('cpu'))
    rows, captions, models = [], set(), []
    for network in opts.networks:
        if rank == 0:
            print(f'Loading {network} ...', flush=True)
        G, training_set_kwargs, model = load_network(network)
        models.append(model)
        dataset_kwargs = dataset_kwargs_for(opts.data, opts.data_class, G, training_set_kwargs, network, opts.mirror)
        memo, results = dict(), dict()
        for metric in opts.metrics:
            try:
                result = metric_main.calc_metric(metric, G, dataset_kwargs, num_gpus=max(opts.num_gpus, 1), rank=rank, device=device,
                    feature_extractor=opts.features, progress=(rank == 0), mode=opts.mode, inception=opts.inception,
                    allow_download=opts.download, batch_size=opts.batch, seed=opts.seed, cache=opts.cache, fake_memo=memo, vgg16=opts.vgg16)
            except metric_main.MetricUnavailableError as e:
                raise UserError(str(e)) from None
            except _input_errors() as e:
                raise UserError(f'{network}: {e}') from None
            if rank == 0:
                run_dir = opts.jsonl_dir or (os.path.dirname(os.path.abspath(network)) if '://' not in network else None)
                result.model = model
                metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=network, verbose=opts.verbose)
                results.update({column_name(k, result.mode): v for k, v in result.results.items()})
                ref = result.reference
                mode = f', mode: {result.mode} ({metric_main.MODE_NOTES[result.mode]})' if result.mode in metric_main.MODE_NOTES else \
                    (f', mode: {result.mode}' if result.mode else '')
                captions.add(f'features: {result.feature_extractor}{mode}, reference: {ref["path"]} '
                             f'({(ref["hash"] or "no hash")[:16]}), fakes: {result.num_images}, seed: {opts.seed}')
        rows.append((display_name(network), results))
    return separate_models(rows, opts.networks, models, print if rank == 0 else (lambda *a, **k: None)), '; '.join(sorted(captions))


def separate_models(rows, networks, models, say):
    """A folder whose snapshots are of more than one model (an i-StyleGAN run fine-tuned as CG-GAN in place): say so,
    name the model in each of its rows and keep each model's rows together, each in the given (kimg) order."""
    folders = [os.path.dirname(os.path.abspath(n)) if '://' not in n else n for n in networks]
    kinds = {}
    for folder, model in zip(folders, models):
        kinds.setdefault(folder, {}).setdefault(model, 0)
        kinds[folder][model] += 1
    mixed = [f for f in kinds if len(kinds[f]) > 1]
    for folder in mixed:
        say(f'Note: {display_name(folder)} holds snapshots of {len(kinds[folder])} models '
            f'({", ".join(f"{m}: {k}" for m, k in kinds[folder].items())}); each model is scored apart, its rows named [model].')
    first = {m: i for i, m in reversed(list(enumerate(models)))}
    order = sorted(range(len(rows)), key=lambda i: (first[models[i]] if folders[i] in mixed else 0, i))
    return [(f'{rows[i][0]} [{models[i]}]' if folders[i] in mixed else rows[i][0], rows[i][1]) for i in order]

#----------------------------------------------------------------------------

@click.command()
@click.option('--metrics',     'metrics',   help='Comma-separated metric names, e.g. fid50k_full,kid50k_full,fid50k_domain', metavar='LIST', default='fid50k_full', show_default=True)
@click.option('--network',     'networks',  help='Snapshot (.pt/.pkl), URL or quoted glob; repeatable', metavar='PATH', multiple=True)
@click.option('--run',         'runs',      help='Training run folder: all its network-snapshot-* files; repeatable', metavar='DIR', multiple=True)
@click.option('--data',                     help='Dataset (zip or folder) [default: the one the snapshot was trained on]', metavar='PATH')
@click.option('--mode',                     help='clean-fid preprocessing', type=click.Choice(['clean', 'legacy_tensorflow']), default='clean', show_default=True)
@click.option('--mirror',                   help='Whether the dataset was x-flipped in training (NVIDIA\'s option; *_full metrics read reals unflipped) [default: look up]', type=bool, metavar='BOOL')
@click.option('--gpus',        'num_gpus',  help='Number of GPUs (0 = CPU) [default: 1 if CUDA is available, else 0]', type=click.IntRange(min=0))
@click.option('--inception',                help='Inception weights inception-2015-12-05.pt [default: $CGGAN_INCEPTION, else the cache folder]', metavar='PATH')
@click.option('--vgg16',                    help='VGG16 weights vgg16.pt for pr50k3_full, ppl* [default: $CGGAN_VGG16, else the cache folder]', metavar='PATH')
@click.option('--download/--no-download',   help='Download missing metric weights (never when CGGAN_OFFLINE=1)', default=True, show_default=True)
@click.option('--features',                 help='Feature extractor: inception, random-conv (smoke runs) or an allow-listed FeatureExtractor class', metavar='NAME', default='inception', show_default=True)
@click.option('--batch',                    help='Images per batch', type=click.IntRange(min=1), default=64, show_default=True)
@click.option('--seed',                     help='Random seed of latents and labels', type=int, default=0, show_default=True)
@click.option('--cache/--no-cache',         help='Reuse cached dataset statistics', default=True, show_default=True)
@click.option('--table',                    help='Also write the Markdown table to this file', metavar='FILE')
@click.option('--jsonl-dir',                help='Folder for metric-*.jsonl [default: each snapshot\'s folder]', metavar='DIR')
@click.option('--verbose',                  help='Print each JSON record', type=bool, metavar='BOOL', default=True, show_default=True)
@click.option('--quiet',                    help='Same as --verbose=false', is_flag=True)
@click.option('--data-class',               help='Dataset class (advanced)', default='training.dataset.ImageFolderDataset', show_default=True, hidden=True)
def main(**kwargs):
    """Evaluate metrics of network snapshots against a dataset and print a Markdown table.

    \b
    Metrics (docs/metrics.md):
      fid50k_full, kid50k_full  FID / KID against the full dataset (10k, 1k too)
      fid50k_domain             per-domain FID and their mean (10k, 1k too)
      swap1k                    CG-GAN swap metrics (no Inception file needed)
      gt1k                      ground-truth factor metrics of data sets with
                                known factors (builtin:*; no Inception needed)
      pr50k3_full               NVIDIA's precision and recall (VGG16)
      is50k                     Inception Score
      ppl2_wend                 path length in W at endpoints (and ppl_zfull,
                                ppl_wfull, ppl_zend, ppl_wend)
      fid50k, kid50k, pr50k3    NVIDIA's legacy names: computed as fid50k_full,
                                kid50k_full, pr50k3_full (the same up to 50k reals)
    FID/KID in --mode=clean are not comparable with published numbers;
    --mode=legacy_tensorflow is. pr, is and ppl always follow NVIDIA.
    """
    opts = dnnlib.EasyDict(kwargs)
    opts.verbose = opts.verbose and not opts.pop('quiet')
    try:
        run(opts)
    except UserError as e:
        raise click.ClickException(str(e)) from None


def run(opts):
    from metrics import metric_main
    opts.metrics = [m.strip() for m in opts.metrics.split(',') if m.strip()]
    bad = [m for m in opts.metrics if not metric_main.is_valid_metric(m)]
    if bad or not opts.metrics:
        raise UserError(f'Unknown metric {", ".join(bad) or "(none given)"}; choose from {", ".join(metric_main.list_valid_metrics())}.')
    for note in filter(None, map(metric_main.legacy_note, opts.metrics)):
        print(note)
    opts.metrics = list(dict.fromkeys(map(metric_main.canonical_metric, opts.metrics)))
    if opts.data is not None and not os.path.exists(os.path.expanduser(opts.data)):
        raise UserError(f'--data={opts.data} does not exist; pass a dataset zip or folder.')
    opts.data = os.path.expanduser(opts.data) if opts.data else None
    if opts.num_gpus is None:
        opts.num_gpus = 1 if torch.cuda.is_available() else 0
    if opts.num_gpus > torch.cuda.device_count():
        raise UserError(f'--gpus={opts.num_gpus} but {torch.cuda.device_count()} GPU(s) are visible; pass --gpus={torch.cuda.device_count()}.')
    if opts.data_class not in allowlist.SLOTS['dataset']:
        raise UserError(f'--data-class={opts.data_class} is not a dataset class of this code; use {", ".join(allowlist.SLOTS["dataset"])}.')
    if opts.features not in ('inception', 'random-conv') + allowlist.SLOTS['feature_extractor']:
        raise UserError(f'--features={opts.features} is unknown; use inception, random-conv or {", ".join(allowlist.SLOTS["feature_extractor"])}.')
    for flag, path in (('--table', opts.table), ('--jsonl-dir', opts.jsonl_dir)):
        if path and (os.path.isdir(path) if flag == '--table' else os.path.isfile(path)):
            raise UserError(f'{flag}={path} is {"a folder" if flag == "--table" else "a file"}; give {"a file path" if flag == "--table" else "a folder"}.')
    if opts.table:
        folder = os.path.dirname(os.path.abspath(opts.table))
        try:  # before any metric is computed: a table that cannot be written is said now
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise UserError(f'--table={opts.table}: cannot create its folder "{folder}" ({e.strerror}); choose another path.') from None
        dnnlib.util.remove_stale_temp_files(folder)
    opts.networks = expand_networks(opts.networks, opts.runs)
    if opts.features == 'inception':
        opts.features = None
    needed = {spec for m in opts.metrics for spec in metric_main.required_weights(m, opts.features)}
    for spec in sorted(needed, key=lambda s: s.key):  # check (or fetch) the weights before any network is loaded
        try:
            opts[spec.key] = metric_main.weights.find(spec, opts[spec.key], allow_download=opts.download)
        except metric_main.MetricUnavailableError as e:
            raise UserError(str(e)) from None
    if opts.jsonl_dir:
        try:
            os.makedirs(opts.jsonl_dir, exist_ok=True)
        except OSError as e:
            raise UserError(f'Cannot create --jsonl-dir={opts.jsonl_dir} ({e.strerror}); choose another folder.') from None

    if opts.num_gpus > 1:  # ranks 1.. compute their share; rank 0 (this process) reports
        rows, caption = _spawn_and_evaluate(opts)
    else:
        rows, caption = evaluate(0, opts)
    table = markdown_table(rows, caption)
    print('\n' + table)
    if opts.table:
        try:
            with dnnlib.util.atomic_write(opts.table, 'w') as f:
                f.write(table + '\n')
        except OSError as e:
            raise UserError(f'Cannot write --table={opts.table} ({e.strerror}); the table is printed above.') from None


def _spawn_and_evaluate(opts):
    """Multi-GPU: every rank runs `evaluate`; rank 0's rows come back through a file."""
    import json
    import tempfile
    from torch_utils import distributed
    with tempfile.TemporaryDirectory() as tmp:
        opts.rows_file = os.path.join(tmp, 'rows.json')
        distributed.launch(_rank_entry, opts.num_gpus, args=(opts,))
        with open(opts.rows_file) as f:
            rows, caption = json.load(f)
    return [tuple(r) for r in rows], caption


def _rank_entry(opts):
    import json
    from torch_utils import distributed
    try:
        rank = int(os.environ.get('RANK', '0'))
        rows, caption = evaluate(rank, opts)
        if rank == 0:
            with open(opts.rows_file, 'w') as f:
                json.dump([rows, caption], f)
    except UserError as e:
        print(f'Error: {e}', flush=True)
        distributed.shutdown(sync=False)
        raise SystemExit(1)
    except BaseException:
        distributed.shutdown(sync=False)
        raise
    distributed.shutdown()

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------

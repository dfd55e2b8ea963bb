"""The last step of `make demo`: score the newest snapshot of a run against the ground truth of a built-in
data set (builtin:patches, builtin:patches-global or builtin:shapes).

  python tools/demo_report.py --run=demo-out/runs --data=demo-out/patches-16.zip --outdir=demo-out/swap

Prints, for 1000 eps rendered in every domain, the share of fakes whose shape the factor oracle names with
confidence (per shape, next to the same share on held-out reals), content kept under a domain swap, style
in the target domain's range and fd_oracle; writes a swap grid (rows: eps, columns: domains) as PNG. On a
data set with style regions its last two lines are the mechanism scores of metrics/region_metrics.py: the
off-region leakage of a domain swap and the style dims' share of Jacobian mass inside the regions.
"""
import os
import sys

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#----------------------------------------------------------------------------

@click.command()
@click.option('--run', 'run', required=True, metavar='DIR', help='Run folder (or --outdir of train.py): its newest snapshot')
@click.option('--data', required=True, metavar='ZIP', help='The data set the run was trained on (with factors)')
@click.option('--outdir', required=True, metavar='DIR', help='Where the swap grid goes')
@click.option('--samples', type=click.IntRange(min=10), default=1000, show_default=True, help='eps to score')
def main(run, data, outdir, samples):
    """Score a run on a built-in data set with the factor oracle and draw its swap grid."""
    from metrics import factor_oracle, ground_truth, region_metrics
    from training.dataset import ImageFolderDataset
    from torch_utils.snapshot import load_snapshot, SnapshotError
    from training import domain_swap
    from training.training_loop import find_latest_snapshot
    snap = find_latest_snapshot(run)
    if snap is None:
        raise click.ClickException(f'No network-snapshot-*.pt under "{run}"; train first.')
    try:
        data_snap = load_snapshot(snap)
        G = data_snap['G_ema']
        oracle = factor_oracle.load_or_train(data, progress=True)
        res = ground_truth.evaluate(G, oracle, num_samples=samples)
        meta = ImageFolderDataset(path=data, use_labels=True)._meta
        masks = region_metrics.regions_from_meta(meta, int(G.img_resolution), where=f'"{data}"') if 'style_regions' in meta else None
    except (SnapshotError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    names = oracle.meta['class_names']['shape']
    print(f'\nScores of {snap} ({samples} eps, each in every domain), judged by the factor oracle:')
    print(f'  {"shape":<10} {"fakes":>6} {"reals":>6}   (share named with confidence >= {factor_oracle.RECOGNISED_CONFIDENCE:g})')
    for n in names:
        print(f'  {n:<10} {res[f"recognised_shape_{n}"]:6.3f} {res[f"recognised_shape_{n}_real"]:6.3f}')
    print(f'  {"all":<10} {res["recognised_shape"]:6.3f} {res["recognised_shape_real"]:6.3f}')
    print(f'  content kept under a domain swap {res["content_kept"]:.3f} (1 = kept), style in the target domain\'s range '
          f'{res["style_in_range"]:.3f} (reals {res["style_in_range_real"]:.3f}), fd_oracle {res["fd_oracle"]:.1f} (0 = reals)')
    seeds = list(range(8))
    grid = domain_swap.swap_grid(G, seeds, truncation_psi=1.0)
    grid = domain_swap.upscale(grid)
    names = data_snap.get('domain_names') or [f'domain {k}' for k in range(G.c_dim)]
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, 'swap-grid.png')
    domain_swap.save_grid_png(grid, path, col_headers=list(names), row_headers=[f'seed {s}' for s in seeds])
    print(f'  swap grid (same eps in every column): {path}')
    if masks is not None:
        leak = region_metrics.generator_leakage(G, masks, num_samples=min(samples, 500))
        share = region_metrics.generator_region_shares(G, masks)
        print(f'  off-region leakage of a domain swap {leak["leakage"]:.3f} (0 = a swap changes only the style regions, 1 = it redraws the image)')
        print(f'  style dims\' Jacobian mass inside the style regions {share["style_in_region_share"]:.3f} '
              f'(chance {share["region_area_share"]:.3f} = their area, ideal 1)')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------

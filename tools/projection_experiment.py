"""Project held-out real images of builtin:shapes into trained 16x16 generators, in W and in the latent eps,
and swap their domain; the factor oracle (metrics/factor_oracle.py) judges content and style (docs/projector.md).

  python tools/projection_experiment.py --data=shapes-16.zip --oracle-cache=oracle --outdir=out/proj \\
      --network=istylegan=a.pt --network=cggan=b.pt

Reals: --per-domain images of each domain from the oracle's held-out fifth (its seeded order; the generators
were trained on every real). Each image is projected with --steps steps per seed, offline pixel-pyramid
distance, in both spaces, and rendered in the other domains (W space: shifted by the domains' mean-W difference).
Per image: PSNR of the projection; content factors recovered (the oracle's reading of the projection equals
that of the target: same shape class, x / y / scale within --tol standard deviations of the reals); after a
swap, the same share against the target (content kept) and whether every style factor is inside the target
domain's 1st-99th percentile range of the reals. Results: mean +- std over seeds, and the paired difference
latent - W per image (mean over seeds) with its standard error over images.
"""
import json
import os
import sys

import click
import numpy as np
import torch
import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import dnnlib  # noqa: E402
from metrics import factor_oracle as fo  # noqa: E402
from training import domain_swap, projection  # noqa: E402
from training.dataset import ImageFolderDataset  # noqa: E402
from training.generation import load_generator  # noqa: E402

SPACES = ('w', 'latent')
MEASURES = ('psnr', 'content_recovered', 'content_kept', 'style_in_range')

#----------------------------------------------------------------------------

def held_out_reals(data, oracle, per_domain):
    dataset = ImageFolderDataset(path=data, use_labels=True)
    order = np.random.RandomState(int(oracle.meta['seed'])).permutation(len(dataset))[:int(oracle.meta['settings']['max_images'])]
    held = order[int(oracle.meta['num_train']):]
    picked = {k: [] for k in range(oracle.num_domains)}
    for i in held:
        img, label = dataset[int(i)]
        k = int(np.argmax(label))
        if len(picked[k]) < per_domain:
            picked[k].append(np.asarray(img))
        if all(len(v) == per_domain for v in picked.values()):
            break
    imgs = [(k, im) for k in picked for im in picked[k]]
    return torch.from_numpy(np.stack([im for _, im in imgs])), np.array([k for k, _ in imgs])


def psnr(a, b):
    mse = float(((a.to(torch.float64) - b.to(torch.float64)) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def content_match(oracle, ref, other, tol):
    """Share of content factors whose reading in `other` equals the one in `ref` (dicts of 1-element arrays)."""
    hits = []
    for spec in oracle.factors:
        if spec['kind'] != 'content':
            continue
        a, b = ref[spec['name']][0], other[spec['name']][0]
        hits.append(a == b if spec['type'] == 'class' else abs(a - b) <= tol * spec['std'])
    return float(np.mean(hits))


def style_ok(oracle, values, domain):
    return float(all(fo.in_style_range(sp, oracle.meta['style_ranges'], values[sp['name']][0], domain)
                     for sp in oracle.factors if sp['kind'] == 'style'))


def measure_one(G, oracle, img, domain, space, seed, steps, tol, w_stats):
    """Measures of one projection and the images (projection, every domain) for the figure."""
    target = img[None].to(torch.float32) / 127.5 - 1
    c = torch.eye(G.c_dim)[[domain]]
    res = projection.project(G, target, c, space=space, num_steps=steps, seed=seed, progress=False, w_stats=w_stats[domain])
    rendered = domain_swap.to_uint8(projection.render_domains(G, res, range(G.c_dim), c_src=c, noise=res['noise'], w_stats=w_stats))
    _f, ref, _p = oracle.predict(img[None])
    readings = [oracle.predict(rendered[k:k + 1])[1] for k in range(G.c_dim)]
    others = [k for k in range(G.c_dim) if k != domain]
    return dict(psnr=psnr(domain_swap.to_uint8(res['image'])[0], img),
                content_recovered=content_match(oracle, ref, readings[domain], tol),
                content_kept=float(np.mean([content_match(oracle, ref, readings[k], tol) for k in others])),
                style_in_range=float(np.mean([style_ok(oracle, readings[k], k) for k in others]))), rendered


@torch.no_grad()
def generator_swaps(G, oracle, num_samples, tol):
    """The generator's own swaps (random eps in every domain), the same measures: the best a latent swap can keep."""
    kept, style = [], []
    for i in range(num_samples):
        imgs = domain_swap.swap_grid_latents(G, [domain_swap.seed_latent(i, G.z_dim)], truncation_psi=1.0)[0]
        reads = [oracle.predict(imgs[k:k + 1])[1] for k in range(G.c_dim)]
        for a in range(G.c_dim):
            for b in range(G.c_dim):
                if a != b:
                    kept.append(content_match(oracle, reads[a], reads[b], tol))
                    style.append(style_ok(oracle, reads[b], b))
    return dict(samples=num_samples, content_kept=float(np.mean(kept)), style_in_range=float(np.mean(style)))


def summarise(rows, seeds):
    """{space: {measure: [mean, std over seeds]}} and {measure: [paired mean latent - W, its s.e. over images]}."""
    table, paired = {}, {}
    for space in SPACES:
        table[space] = {}
        for m in MEASURES:
            per_seed = [np.mean([r[m] for r in rows if r['space'] == space and r['seed'] == s]) for s in seeds]
            table[space][m] = [float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(seeds) > 1 else 0.0]
    images = sorted({r['image'] for r in rows})
    for m in MEASURES:
        d = [np.mean([r[m] for r in rows if r['image'] == i and r['space'] == 'latent']) -
             np.mean([r[m] for r in rows if r['image'] == i and r['space'] == 'w']) for i in images]
        paired[m] = [float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(len(d)))]
    return table, paired


def markdown(results):
    lines = ['| network | space | PSNR (dB) | content recovered | content kept after swap | style in target range |',
             '|---|---|---|---|---|---|']
    for name, r in results['networks'].items():
        for space in SPACES:
            t = r['table'][space]
            lines.append(f'| {name} | {space} | ' + ' | '.join(f'{t[m][0]:.3f} ± {t[m][1]:.3f}' for m in MEASURES) + ' |')
        p = r['paired']
        lines.append(f'| {name} | latent − w (paired) | ' + ' | '.join(f'{p[m][0]:+.3f} ± {p[m][1]:.3f}' for m in MEASURES) + ' |')
    return '\n'.join(lines) + '\n'

#----------------------------------------------------------------------------

@click.command()
@click.option('--data', help='builtin:shapes zip', required=True, metavar='ZIP')
@click.option('--oracle-cache', help='Folder of the cached factor oracle', required=True, metavar='DIR')
@click.option('--network', 'networks', help='NAME=snapshot (repeat)', multiple=True, required=True)
@click.option('--outdir', required=True, metavar='DIR')
@click.option('--per-domain', type=click.IntRange(1, 100), default=10, show_default=True)
@click.option('--steps', type=click.IntRange(1, 10000), default=150, show_default=True)
@click.option('--seeds', type=click.IntRange(1, 10), default=3, show_default=True, help='Projection seeds per image')
@click.option('--tol', type=float, default=0.25, show_default=True, help='Real content factor recovered within tol std')
@click.option('--figure-images', type=click.IntRange(1, 30), default=6, show_default=True)
@click.option('--own-swaps', type=click.IntRange(10, 10000), default=300, show_default=True, help='Random eps for the reference')
@click.option('--reference-only', is_flag=True, help='Only the generators\' own swaps -> reference.json')
def main(data, oracle_cache, networks, outdir, per_domain, steps, seeds, tol, figure_images, own_swaps, reference_only):
    torch.set_num_threads(1)
    oracle = fo.load_or_train(data, cache_dir=oracle_cache, seed=0, progress=False)
    reference = {}
    for spec in networks:
        name, _, path = spec.partition('=')
        reference[name] = dict(generator_swaps(load_generator(path, 'cpu')[0], oracle, own_swaps, tol), tol=tol)
    os.makedirs(outdir, exist_ok=True)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'reference.json'), 'w') as f:
        json.dump(reference, f, indent=1)
    print(json.dumps(reference))
    if reference_only:
        return
    imgs, doms = held_out_reals(data, oracle, per_domain)
    pick = [i for k in range(oracle.num_domains) for i in np.flatnonzero(doms == k)[:max(1, figure_images // oracle.num_domains)]]
    results = dict(data=data, images=len(imgs), steps=steps, seeds=seeds, tol=tol, distance=projection.PixelPyramidDistance.name,
                   own_swaps=reference, networks={})
    for spec in networks:
        name, _, path = spec.partition('=')
        G, _data = load_generator(path, 'cpu')
        rows, tiles, w_stats = [], {}, projection.domain_w_stats(G)
        bar = tqdm.tqdm(total=len(imgs) * len(SPACES) * seeds, desc=name)
        for i, (img, k) in enumerate(zip(imgs, doms)):
            for space in SPACES:
                for s in range(seeds):
                    m, rendered = measure_one(G, oracle, img, int(k), space, s, steps, tol, w_stats)
                    rows.append(dict(m, image=i, domain=int(k), space=space, seed=s))
                    if s == 0 and i in pick:
                        tiles[(i, space)] = rendered
                    bar.update(1)
        bar.close()
        table, paired = summarise(rows, list(range(seeds)))
        results['networks'][name] = dict(snapshot=path, table=table, paired=paired, rows=rows)
        grid = torch.stack([torch.cat([imgs[i][None], tiles[(i, 'w')], tiles[(i, 'latent')]]) for i in pick])
        grid = grid.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)              # 16 px tiles are too small to see
        heads = ['target'] + [f'W:{d}' for d in range(G.c_dim)] + [f'eps:{d}' for d in range(G.c_dim)]
        domain_swap.save_grid_png(grid, os.path.join(outdir, f'projection_{name}.png'), col_headers=heads,
                                  row_headers=[f'domain {doms[i]}' for i in pick])
    with dnnlib.util.atomic_write(os.path.join(outdir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'results.md'), 'w') as f:
        f.write(markdown(results))
    print(markdown(results))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------

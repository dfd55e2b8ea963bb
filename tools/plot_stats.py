"""Draw a run's loss curves from its stats.jsonl to a PNG, without TensorBoard.

    python tools/plot_stats.py --run=runs/00000-shapes-tiny-cg-gan-gpus1-batch32-gamma0.05
    python tools/plot_stats.py --stats=runs/.../stats.jsonl --keys='Loss/G/' --out=g-losses.png

One panel per statistic whose name matches --keys (a regular expression; default: every Loss/... entry),
its per-tick mean against kimg (Progress/kimg), with +-1 std shaded where a tick saw more than one value.
"""
import json
import math
import os
import re

import click

#----------------------------------------------------------------------------

class UserError(Exception):
    """A problem with the inputs; printed as one sentence."""


def read_stats(path):
    """[(kimg, {name: (mean, std)})] of the ticks in a stats.jsonl, in file order."""
    ticks = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kimg = float(record['Progress/kimg']['mean'])
                values = {k: (float(v['mean']), float(v.get('std', 0) or 0)) for k, v in record.items() if isinstance(v, dict) and 'mean' in v}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise UserError(f'Line {number} of "{path}" is not a stats record of train.py (JSON with Progress/kimg); '
                                f'pass a stats.jsonl that train.py wrote.') from None
            ticks.append((kimg, values))
    return ticks


def plot(ticks, pattern, out, title=None):
    """Write the panels of the statistics matching `pattern` to `out`; returns their names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    regex = re.compile(pattern)
    names = sorted({name for _kimg, values in ticks for name in values if regex.search(name)})
    if not names:
        raise UserError(f'No statistic matches --keys={pattern!r}; names in the file: '
                        f'{", ".join(sorted({n for _k, v in ticks for n in v})[:12])}.')
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = [(kimg, values[name]) for kimg, values in ticks if name in values and math.isfinite(values[name][0])]
        xs = [p[0] for p in points]
        means = [p[1][0] for p in points]
        stds = [p[1][1] for p in points]
        ax.plot(xs, means, lw=1.2)
        ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.2, lw=0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('kimg', fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return names

#----------------------------------------------------------------------------

@click.command()
@click.option('--run',   help='Training run folder (its stats.jsonl)', metavar='DIR')
@click.option('--stats', help='A stats.jsonl file (instead of --run)', metavar='FILE')
@click.option('--keys',  help='Regular expression of the statistics to draw', default='^Loss/', show_default=True)
@click.option('--out',   help='PNG to write [default: loss-curves.png next to stats.jsonl]', metavar='FILE')
def main(run, stats, keys, out):
    """Draw the loss curves of a training run (stats.jsonl) to a PNG."""
    try:
        if (run is None) == (stats is None):
            raise UserError('Pass either --run=DIR or --stats=FILE.')
        path = stats if stats is not None else os.path.join(run, 'stats.jsonl')
        if not os.path.isfile(path):
            raise UserError(f'"{path}" does not exist; pass a run folder that has trained at least one tick, or its stats.jsonl.')
        try:
            re.compile(keys)
        except re.error as e:
            raise UserError(f'--keys={keys!r} is not a regular expression ({e}).') from None
        ticks = read_stats(path)
        if not ticks:
            raise UserError(f'"{path}" holds no ticks yet; try again after the first tick.')
        out = out or os.path.join(os.path.dirname(os.path.abspath(path)), 'loss-curves.png')
        if os.path.isdir(out):
            raise UserError(f'--out={out} is a folder; give a .png file name.')
        names = plot(ticks, keys, out, title=os.path.basename(os.path.dirname(os.path.abspath(path))))
        click.echo(f'Wrote {out} ({len(names)} curves over {len(ticks)} ticks: {", ".join(names)}).')
    except UserError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f'Cannot write or read a file ({e.strerror}: {e.filename}).') from None

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------

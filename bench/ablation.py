"""Why does fine-tuning lose to a frozen-feature head? One change at a time against fastai's fine_tune default.

    python bench/ablation.py neu|synth-cls [--smoke] [--size 128] [--epochs 2] [--only 0,3,8] [--note TEXT]

Every row trains EfficientNet-Lite0 with the library (`defect_nb.train.train`) on the benchmark's own split
(bench/real_bench.py), changing one thing from the previous default recipe (fastai fine_tune: 1 frozen epoch with a
random head, then `epochs` unfrozen, lr 2e-3, batch 32, flips + rotations + lighting + blur/noise), and reports the
test accuracy (checkpoint chosen by valid loss) and the training time. The frozen-feature head (`method='features'`)
and fine-tuning from it (`method='finetune'`) are scored at the same size. Writes bench/results/ablation_NAME.json/.md.
"""
import argparse, json, sys, time, resource
from pathlib import Path
import pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from real_bench import table_for, machine, RESULTS, ROOT

def variants(epochs):
    base = dict(method='fastai', epochs=epochs, freeze_epochs=1, lr=2e-3, bs=32, aug=True, bn_frozen=False)   # bn_frozen is today's default; the base is the old one
    return [('fastai fine_tune (previous default)', base),
            ('no blur/noise', dict(base, aug=dict(blur_noise=0))),
            ('no lighting', dict(base, aug=dict(lighting=0))),
            ('no augmentation', dict(base, aug=False)),
            ('lr 5e-4', dict(base, lr=5e-4)),
            ('lr 1e-2', dict(base, lr=1e-2)),
            ('no frozen epoch', dict(base, freeze_epochs=0)),
            ('3 frozen epochs', dict(base, freeze_epochs=3)),
            ('batch-norm statistics frozen', dict(base, bn_frozen=True)),
            ('batch 16', dict(base, bs=16)),
            ('frozen-feature head (features)', dict(method='features', tta='none')),
            ('head, then fine-tune (finetune)', dict(method='finetune', epochs=epochs, tta='none')),
            ('batch-norm frozen, 224 px (resolution)', dict(base, bn_frozen=True, size=224))]

def render(res, out):
    "The markdown table of a results file (re-rendered from the JSON alone with --render)."
    rows = res['rows']
    md = ['| # | change from fastai fine_tune | test accuracy | valid accuracy by epoch | train s |', '|---|---|---|---|---|']
    md += [f"| {x['i']} | {x['change']} | {100 * x['test_accuracy']:.1f}% | {', '.join(f'{100 * v:.1f}' for v in x['valid_accuracy_by_epoch'])} | {x['train_seconds']:.0f} |" for x in rows]
    (Path(out) / f"ablation_{res['name']}.md").write_text('\n'.join(md) + f"\n\nLite0 at {res['size']} px, 1 frozen + {res['epochs']} epochs unless the row says otherwise; "
                                                   f"test split of bench/real_bench.py {res['name']}. "
                                                   + (res.get('note') or "The training times were taken while other jobs shared the two cores, unevenly from row to row: compare accuracies, not seconds.")
                                                   + f" Command: `{res['command']}`\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('name', choices=['neu', 'synth-cls']); ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--smoke', action='store_true'); ap.add_argument('--data')
    ap.add_argument('--only', help='comma-separated row numbers to run (default all)')
    ap.add_argument('--render', action='store_true', help='only re-render the markdown table from the results file')
    ap.add_argument('--note', help="how the rows were run (default: the file's note, else a warning that other jobs shared the cores)")
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--out', default=str(RESULTS))
    a = ap.parse_args()
    if a.render:
        out = Path(a.out) / ('smoke' if a.smoke else ''); render(json.loads((out / f'ablation_{a.name}.json').read_text()), out); return
    from defect_nb.train import train
    from defect_nb.evaluate import evaluate
    work = Path(a.work); t = table_for(a.name, a, work); size = 48 if a.smoke else a.size; epochs = 1 if a.smoke else a.epochs
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    res_file = out / f'ablation_{a.name}.json'
    prev = json.loads(res_file.read_text()) if res_file.exists() and a.only else {}
    rows, note = prev.get('rows', []), a.note or prev.get('note')   # --only adds rows to the file (and keeps its note)
    todo = [int(i) for i in a.only.split(',')] if a.only else ([0, 8, 10, 11] if a.smoke else None)
    for i, (label, kw) in enumerate(variants(epochs)):
        if todo is not None and i not in todo: continue
        kw = dict(kw); run = work / f'ablation-{a.name}-{i}'; row_size = 48 if a.smoke else kw.pop('size', size)
        t0 = time.perf_counter()
        r = train(t, 'classify', 'efficientnet_lite0', size=row_size, out=run, overwrite=True, seed=42, progress=False, num_workers=0 if a.smoke else None, **kw)
        train_s = time.perf_counter() - t0
        ev = evaluate(run, 'test', progress=False)
        h = r.history
        row = dict(i=i, change=label, method=kw['method'], size=row_size, bn_frozen=kw.get('bn_frozen'), test_accuracy=ev.metrics['accuracy'], best_epoch=r.best_epoch,
                   valid_accuracy_by_epoch=[round(float(v), 4) for v in h.accuracy], train_loss_last=round(float(h.train_loss.iloc[-1]), 4),
                   valid_loss_last=round(float(h.valid_loss.iloc[-1]), 4), train_seconds=round(train_s, 1))
        rows = [x for x in rows if x['i'] != i] + [row]; rows.sort(key=lambda x: x['i'])
        print(row, flush=True)
        res = dict(name=a.name, size=size, epochs=epochs, smoke=a.smoke, rows=rows, machine=machine(),
                   command=f'python bench/ablation.py {a.name}' + (' --smoke' if a.smoke else f' --size {a.size} --epochs {a.epochs}'),
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **({'note': note} if note else {}))
        res_file.write_text(json.dumps(res, indent=2))
        render(res, out)


if __name__ == '__main__': main()

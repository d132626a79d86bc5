"""Which frozen-feature setting? Backbone, input size and test-time views, each scored on the same split.

    python bench/probe_sweep.py neu|elpv|synth [--smoke] [--settings lite0:224:hflip,lite2:260:none,...] [--cv K]

For every setting: features of all images (cached, `defect_nb.features`), a logistic-regression head with C chosen on
the validation split (`features.fit_head`), accuracy on the held-out test split. The split is the benchmark's own
(bench/real_bench.py). With --cv K, also K-fold stratified cross-validation over all images, as real_bench.py --cv does
it (per fold: validation = 1/8 of the training folds for C, the held-out fold as test). Writes
bench/results/probe_sweep_NAME.json and .md.
"""
import argparse, json, sys, time, resource
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).parent))
from real_bench import table_for, machine, RESULTS, ROOT, pct

DEFAULT = 'lite0:160:none,lite0:192:none,lite0:224:none,lite0:224:hflip,lite0:256:hflip,lite0:224:dihedral,lite1:240:hflip,lite2:260:hflip'

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('name', choices=['neu', 'elpv', 'synth-cls']); ap.add_argument('--settings', default=DEFAULT)
    ap.add_argument('--smoke', action='store_true'); ap.add_argument('--data'); ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench'))
    ap.add_argument('--out', default=str(RESULTS)); ap.add_argument('--cv', type=int)
    a = ap.parse_args()
    from defect_nb.features import FeatureExtractor, fit_head
    t = table_for(a.name, a, Path(a.work)); classes = list(t.attrs.get('classes') or sorted(t.label.unique()))
    y = t.label.map({c: i for i, c in enumerate(classes)}).to_numpy(); sp = t.split.to_numpy()
    rows = []
    for s in a.settings.split(','):
        b, size, tta = s.split(':'); size = 64 if a.smoke else int(size)
        fx = FeatureExtractor('efficientnet_' + b, size, tta)
        t0 = time.perf_counter(); F = fx(list(t.image), progress=not a.smoke); sec = time.perf_counter() - t0
        fit = fit_head(F[sp == 'train'], y[sp == 'train'], F[sp == 'valid'], y[sp == 'valid'], len(classes))
        W, bias = fit['head']['weight'].numpy(), fit['head']['bias'].numpy()
        pred = (F[sp == 'test'] @ W.T + bias).argmax(1); acc = float((pred == y[sp == 'test']).mean())
        row = dict(setting=s, backbone='efficientnet_' + b, size=size, tta=tta, C=fit['value'], valid_accuracy=fit['best']['accuracy'],
                   valid_loss=round(fit['best']['valid_loss'], 4), test_accuracy=acc, n_test=int((sp == 'test').sum()),
                   feature_seconds=round(sec, 1), computed=fx.stats['computed'], img_s=round(fx.stats['computed'] / sec, 1) if fx.stats['computed'] else None)
        if a.name == 'elpv':
            p = (F[sp == 'test'] @ W.T + bias); p = np.exp(p - p.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
            yt = t.label[sp == 'test'].isin(['p67', 'p100']).to_numpy(); d = p[:, classes.index('p67')] + p[:, classes.index('p100')]
            row['test_binary_accuracy'] = float(((d > 0.5) == yt).mean())
        if a.cv:
            from sklearn.model_selection import StratifiedKFold, train_test_split
            accs = []
            for rest, te in StratifiedKFold(a.cv, shuffle=True, random_state=42).split(F, y):
                tr, va = train_test_split(rest, test_size=max(len(classes), round(len(rest) / 8)), stratify=y[rest], random_state=42)
                h = fit_head(F[tr], y[tr], F[va], y[va], len(classes))
                accs.append(float(((F[te] @ h['head']['weight'].numpy().T + h['head']['bias'].numpy()).argmax(1) == y[te]).mean()))
            row.update(cv_mean=float(np.mean(accs)), cv_std=float(np.std(accs, ddof=1)), cv_min=float(np.min(accs)), cv_folds=accs)
        rows.append(row); print(row, flush=True)
    res = dict(name=a.name, smoke=a.smoke, rows=rows, machine=machine(), peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               command='python bench/probe_sweep.py ' + a.name + (' --smoke' if a.smoke else '') + (f' --settings {a.settings}' if a.settings != DEFAULT else '') + (f' --cv {a.cv}' if a.cv else ''),
               note='feature_seconds is near 0 where the cache already held the features; img_s is measured only on computed images, '
                    'and the first full run shared the 2 cores with other jobs, so its img_s are lower bounds')
    res_prev = Path(a.out) / ('smoke' if a.smoke else '') / f'probe_sweep_{a.name}.json'
    if res_prev.exists():                                   # keep the first measurement of extraction time where this run hit the cache
        prev = {r['setting']: r for r in json.loads(res_prev.read_text())['rows']}
        for r in rows:
            p = prev.get(r['setting'])
            if p and not r['computed'] and p.get('computed'): r.update(feature_seconds=p['feature_seconds'], computed=p['computed'], img_s=p['img_s'])
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / f'probe_sweep_{a.name}.json').write_text(json.dumps(res, indent=2))
    show = pd.DataFrame(rows).drop(columns=['cv_folds', 'backbone'], errors='ignore')
    for c in ('valid_accuracy', 'test_accuracy', 'cv_mean', 'cv_std', 'cv_min', 'test_binary_accuracy'):
        if c in show: show[c] = (100 * show[c]).round(2)
    cols = list(show.columns)                               # plain markdown: no `tabulate` dependency
    md = '\n'.join(['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)] +
                   ['| ' + ' | '.join('' if pd.isna(v) else str(v) for v in row) + ' |' for row in show.itertuples(index=False)])
    (out / f'probe_sweep_{a.name}.md').write_text(md + f"\n\nCommand: `{res['command']}`\n"); print(md)

if __name__ == '__main__': main()

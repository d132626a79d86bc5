"""Does fine-tuning from the frozen-feature head beat the head itself at the benchmarks' own settings?

Reads the finished `--method finetune` runs of `bench/real_bench.py` (their run folders: history, config with the
views check, test predictions written by `evaluate`) and the `features` results in bench/results/NAME.json, and writes
bench/results/finetune_check.{json,md}. The runs themselves:

    python bench/real_bench.py elpv --method finetune --work runs/bench-ft --out runs/res_elpv_ft
    python bench/real_bench.py synth-cls --method finetune --work runs/bench-ft --out runs/res_synth_ft
    python bench/finetune_check.py [--work runs/bench-ft] [--note TEXT]
"""
import argparse, json, platform, sys
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'bench' / 'results'
BINARY = {'elpv': ('p67', 'p100')}          # ELPV: binary = P(p67) + P(p100) > 0.5, as real_bench reports it


def finetune_row(name, run):
    from defect_nb.evaluate import bootstrap_ci
    from defect_nb.train import load_config
    cfg = load_config(run); h = pd.read_csv(run / 'history.csv'); p = pd.read_csv(run / 'predictions_test.csv')
    acc = lambda y, q: float(np.mean(y == q))
    y, q = p.label.to_numpy(), p.pred.to_numpy()
    row = dict(method='finetune', size=cfg['preprocess']['size'], tta=cfg['options']['tta'], epochs=f"head + {cfg['epochs']}",
               best_epoch=cfg['best_epoch'], views_check=cfg.get('views_check'), n_test=len(p),
               train_seconds=round(float(h.seconds.sum()), 1), accuracy=acc(y, q), accuracy_ci=bootstrap_ci((y, q), acc, n=1000),
               history=h.to_dict('records'))
    if name in BINARY:
        yb = p.label.isin(BINARY[name]).to_numpy(); pb = (p[[f'p_{c}' for c in BINARY[name]]].sum(1) > 0.5).to_numpy()
        row.update(binary_accuracy=acc(yb, pb), binary_accuracy_ci=bootstrap_ci((yb, pb), acc, n=1000))
    return row


def features_row(name):
    for f in (RESULTS / f'{name}.json', RESULTS / f'{name}-features.json'):   # the head's results: the recipe's own file, or its -features file
        r = json.loads(f.read_text()) if f.exists() else {}
        if r.get('method') == 'features': break
    else: sys.exit(f'no features results for {name} in {RESULTS}')
    keys = ['accuracy', 'accuracy_ci', 'binary_accuracy', 'binary_accuracy_ci', 'train_seconds', 'size', 'tta', 'n_test']
    return dict(method=r['method'], epochs='head', command=r['command'], **{k: r[k] for k in keys if k in r})


def markdown(res):
    pct = lambda v: '' if v is None else f'{100 * v:.1f}%'
    ci = lambda c: '' if not c else f' [{100 * c[0]:.1f}, {100 * c[1]:.1f}]'
    out = ['# Fine-tuning from the head, against the head, at the benchmarks\' own settings', '', res['question'], '',
           '| benchmark | method | size, views | test accuracy [95% CI] | binary accuracy | training s | best epoch (views check on valid) |',
           '|---|---|---|---|---|---|---|']
    for name, rows in res['benchmarks'].items():
        for r in rows:
            vc = r.get('views_check'); chk = ''
            if vc: chk = f"{r['best_epoch']} (valid loss with views: head {vc['probe_valid_loss']:.4f}, epoch {vc['epoch']} {vc['epoch_valid_loss']:.4f})"
            elif r.get('best_epoch'): chk = str(r['best_epoch'])
            out.append(f"| {name} | {r['method']} ({r['epochs']}) | {r.get('size')} px, {r.get('tta')} | {pct(r['accuracy'])}{ci(r.get('accuracy_ci'))} "
                       f"| {pct(r.get('binary_accuracy'))}{ci(r.get('binary_accuracy_ci'))} | {r.get('train_seconds', 0):.0f} | {chk} |")
    out += ['', res['note'], '', f"Machine: {res['machine']['cores']} CPU cores, no GPU. Command: `{res['command']}`"]
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench-ft')); ap.add_argument('--note', default='')
    ap.add_argument('--out', default=str(RESULTS))
    a = ap.parse_args()
    import os, torch
    bench = {}
    for name in ('elpv', 'synth-cls', 'neu'):
        run = Path(a.work) / f'{name}-finetune'
        if not (run / 'predictions_test.csv').exists(): continue
        bench[name] = [features_row(name), finetune_row(name, run)]
    if not bench: sys.exit(f'no finished finetune run with test predictions under {a.work}')
    res = dict(name='finetune_check', question='Question: at each benchmark\'s own size and test-time views, does fine-tuning the whole network '
                                               'from the fitted head (method finetune, the head kept as epoch 1) beat the head alone (method features)?',
               benchmarks=bench, note=a.note, command='python bench/finetune_check.py' + ('' if a.work == ap.get_default('work') else f' --work {a.work}') + (' --note TEXT' if a.note else ''),
               machine=dict(cpu=platform.machine(), cores=os.cpu_count(), torch=torch.__version__, python=platform.python_version(), gpu=None))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out / 'finetune_check.json').write_text(json.dumps(res, indent=1, default=float))
    (out / 'finetune_check.md').write_text(markdown(res))
    print(markdown(res))


if __name__ == '__main__':
    main()

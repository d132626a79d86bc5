"""Good parts only, a second way: a U-Net trained on good parts with synthetic anomalies drawn on them
(`defect_nb.anomaly.paste_anomalies`, DRAEM's recipe: Zavrtanik et al., ICCV 2021), scored on the real defects.

The training set is made from the benchmark's good training and validation images only (the same split as
bench/anomaly_bench.py and bench/real_bench.py); the U-Net (`unet_lite0`, frozen ImageNet encoder) learns to segment
the drawn anomalies; its defect probability is the anomaly map and the map's maximum the image score. Measured on the
real validation split (which chose these settings: a first run of this recipe, 12_anomaly) and once on test, beside
PatchCore's figures from bench/results/anomaly-NAME.json. Writes bench/results/anomaly-NAME-pasted.json and .md.

    python bench/anomaly_pasted.py synth      # 4 anomalous copies of each good image, 1 + 15 epochs at 200 px
    python bench/anomaly_pasted.py mt         # 2 copies, 1 + 6 epochs at 192 px
    python bench/anomaly_pasted.py synth --smoke
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from real_bench import table_for, machine, RESULTS

SET = {'synth': dict(title='Synthetic steel, good parts only: a U-Net on pasted anomalies', split='synth-seg', normal='ok', side=200, size=200,
                     per_image=4, epochs=15, patchcore='anomaly-synth', goals=dict(image_auroc=0.98, pixel_auroc=0.97)),
       'mt': dict(title='Magnetic tile, good parts only: a U-Net on pasted anomalies', split='mt', normal='Free', side=256, size=192,
                  per_image=2, epochs=6, patchcore='anomaly-mt', goals=dict(image_auroc=0.977, pixel_auroc=0.95))}


def scores(model, pre, rows, normal):
    "Image and pixel AUROC, PRO and per-type figures of the U-Net's defect probability on real images."
    import sklearn.metrics as skm
    from defect_nb.core import load_image
    from defect_nb.data import MaskReader
    from defect_nb.evaluate import predict_images, bootstrap_ci
    from defect_nb.anomaly import pro_score
    P = np.concatenate([predict_images(model, [load_image(p) for p in rows.image[i:i + 64]], pre, 'segment', bs=16)[:, 1] for i in range(0, len(rows), 64)])
    bad = (rows.label != normal).to_numpy(); s = P.reshape(len(P), -1).max(1)
    reader = MaskReader(P.shape[-1]); masks = np.stack([(reader(r) > 0) if b else np.zeros(P.shape[1:], bool) for r, b in zip(rows.to_dict('records'), bad)])
    per = {c: (rows.label == c).to_numpy() | ~bad for c in sorted(rows.label[bad].unique())}
    return dict(n=int(len(rows)), n_defective=int(bad.sum()), image_auroc=float(skm.roc_auc_score(bad, s)),
                image_auroc_ci=bootstrap_ci((bad, s), lambda y, p: skm.roc_auc_score(y, p) if 0 < y.mean() < 1 else np.nan, n=1000),
                pixel_auroc=float(skm.roc_auc_score(masks.ravel(), P.ravel())), pro=float(pro_score(P, masks)),
                per_class_auroc={c: float(skm.roc_auc_score(bad[k], s[k])) for c, k in per.items()},
                per_class_pixel_auroc={c: float(skm.roc_auc_score(masks[k].ravel(), P[k].ravel())) for c, k in per.items() if masks[k].any()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('name', choices=list(SET)); ap.add_argument('--data', help='folder holding magnetic-tile/ (default $DEFECT_NB_DATASETS)')
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--out', default=str(RESULTS), help='results folder (default bench/results; smoke runs: its smoke/)')
    ap.add_argument('--epochs', type=int, help="epochs after the first (default: the benchmark's); another number writes anomaly-NAME-pasted-epochsN, a variant")
    a = ap.parse_args()
    from defect_nb.anomaly import paste_anomalies
    from defect_nb.train import train, load_model, load_config
    b = dict(SET[a.name]); t_start = time.time(); work = Path(a.work)
    variant = f'-epochs{a.epochs}' if a.epochs and a.epochs != b['epochs'] else ''
    if a.epochs: b['epochs'] = a.epochs
    if a.smoke: b.update(side=64, size=64, per_image=1, epochs=1)
    table = table_for(b['split'], a, work); tag = f"pasted-{a.name}{'-smoke' if a.smoke else ''}"
    t0 = time.time(); pasted = paste_anomalies(table, b['normal'], work / tag, per_image=b['per_image'], size=b['side'], seed=0, overwrite=True, progress=not a.smoke)
    t_paste = time.time() - t0
    t0 = time.time(); run = train(pasted, task='segment', arch='unet_lite0', size=b['size'], epochs=b['epochs'], bs=8, loss='ce_dice', encoder_frozen=True,
                                  out=work / f'{tag}{variant}-run', overwrite=True, num_workers=0, progress=False)
    t_train = time.time() - t0
    model = load_model(run.path); pre = load_config(run.path)['preprocess']
    res = {split: scores(model, pre, table[table.split == split].reset_index(drop=True), b['normal']) for split in ('valid', 'test')}
    pc = RESULTS / f"{b['patchcore']}.json"
    beside = {k: json.loads(pc.read_text())['metrics'].get(k) for k in ('image_auroc', 'pixel_auroc', 'pro')} if pc.exists() and not a.smoke else None
    r = dict(name=f"anomaly-{a.name}-pasted{variant}", title=b['title'] + (f", {b['epochs']} epochs: a variant" if variant else ''), smoke=a.smoke, machine=machine(), goals=b['goals'],
             settings=dict(per_image=b['per_image'], side=b['side'], size=b['size'], epochs=b['epochs'], arch='unet_lite0', encoder_frozen=True, kinds=['paste', 'shade', 'stroke'],
                           n_training_images=int((pasted.split == 'train').sum()), n_good_training_images=int(((table.split == 'train') & (table.label == b['normal'])).sum())),
             seconds=dict(paste=round(t_paste, 1), train=round(t_train, 1), total=round(time.time() - t_start, 1)), valid=res['valid'], test=res['test'],
             patchcore_test=beside, command='python bench/anomaly_pasted.py ' + ' '.join(sys.argv[1:]))
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / f"{r['name']}.json").write_text(json.dumps(r, indent=2, default=float)); (out / f"{r['name']}.md").write_text(markdown(r)); print(markdown(r))


def markdown(r):
    f = lambda v: '—' if v is None else f'{v:.3f}'
    rows = ['| measure | valid | test | PatchCore, test | goal |', '|---|---|---|---|---|']
    for k in ('image_auroc', 'pixel_auroc', 'pro'):
        ci = f" [{r['test'][k + '_ci'][0]:.3f}, {r['test'][k + '_ci'][1]:.3f}]" if k + '_ci' in r['test'] else ''
        g = r['goals'].get(k)
        rows.append(f"| {k} | {f(r['valid'][k])} | {f(r['test'][k])}{ci} | {f((r['patchcore_test'] or {}).get(k))} | {'≥ ' + f(g) if g else ''} |")
    s = r['settings']
    return '\n'.join([f"# {r['title']}", '', '\n'.join(rows), '',
        'Image AUROC of each defect type against the good test images: ' + ', '.join(f'{c} {v:.3f}' for c, v in r['test']['per_class_auroc'].items()) + '.', '',
        'Pixel AUROC of each defect type (its images and the good ones): ' + ', '.join(f'{c} {v:.3f}' for c, v in r['test']['per_class_pixel_auroc'].items()) + '.', '',
        f"Training set: {s['n_training_images']:,} images from {s['n_good_training_images']} good training images ({s['per_image']} anomalous copies each, {s['side']} px; "
        f"kinds {', '.join(s['kinds'])}); no defect was read, and the U-Net trained on drawings on the good training images only. Model: {s['arch']}, frozen encoder, 1 + {s['epochs']} epochs at {s['size']} px; "
        f"anomaly map = the U-Net's defect probability, image score = its maximum. Drawing {r['seconds']['paste']:.0f} s, training {r['seconds']['train']:.0f} s; wall time {r['seconds']['total']:.0f} s.",
        f"Machine: {r['machine']['cores']} CPU cores, no GPU.", '', f"Command: `{r['command']}`", ''])


if __name__ == '__main__': main()

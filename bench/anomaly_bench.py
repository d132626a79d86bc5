"""Good parts only: PatchCore-style anomaly detection (`defect_nb.anomaly`) on real and synthetic data.

The memory bank is built from the training split's good images only; the threshold is chosen on validation by cost;
the test split is the one of `bench/real_bench.py` (same function, same seed), so the figures stand beside the
supervised models'. Writes bench/results/anomaly-NAME.json and .md (smoke runs: bench/results/smoke/).

    python bench/anomaly_bench.py mt            # magnetic tile: bank from Free images
    python bench/anomaly_bench.py synth --layers 1 2 --center off --coreset 1280
                                                # synthetic steel: bank from ok images, on the stride-4 grid chosen on its validation (12_anomaly)
    python bench/anomaly_bench.py elpv          # ELPV: bank from functional cells (defect probability 0)
    python bench/anomaly_bench.py mt --layers 3 4 --coreset 0.05 --variant coarse   # a measured variant: anomaly-mt-coarse
    python bench/anomaly_bench.py mt-differnet  # magnetic tile on DifferNet's own split (bench/protocols/differnet_mtd_train_filenames.txt)
    python bench/anomaly_bench.py synth --smoke # a few images, for the tests
"""
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from real_bench import table_for, machine, RESULTS, datasets_root          # the same splits as the supervised benchmarks
DIFFERNET_LIST = ROOT / "bench" / "protocols" / "differnet_mtd_train_filenames.txt"

BENCH = {
    'mt': dict(title='Magnetic tile, good parts only', split='mt', normal='Free', supervised='mt', supervised_key='image_auroc',
               supervised_name='U-Net (unet_lite0, supervised), image AUROC from its map',
               protocol='the 6:2:2 split of the segmentation benchmark (seed 42); bank from the training split\'s Free images only; '
                        'validation (Free + defects) sets the threshold',
               anchors=[('DifferNet (Rudolph et al., WACV 2021), own split', 'image_auroc', 0.977)],
               goals=dict(image_auroc=0.977, pixel_auroc=0.95)),
    'mt-differnet': dict(title="Magnetic tile, good parts only, on DifferNet's split", split='mt-differnet', normal='Free', supervised=None,
                         protocol="DifferNet's (Rudolph et al., WACV 2021): its 761 training images of Free tiles, as listed in the authors' repository "
                                  "(marco-rudolph/differnet, mtd_train_filenames.txt, copied to bench/protocols/); of these, 85% (seed 42) build the bank and 15% "
                                  "set the score scale and the global term's weight (DifferNet trains on all 761); test: the other 191 Free tiles and all "
                                  "392 defective ones. No defect is seen before test, so the threshold is the highest good validation score",
                         anchors=[('DifferNet (Rudolph et al., WACV 2021), this split', 'image_auroc', 0.977)], goals=dict(image_auroc=0.977)),
    'synth': dict(title='Synthetic steel, good parts only', split='synth-seg', normal='ok', supervised=None,
                  protocol='train/valid from generator seed 0, test from held-out seed 1 (as bench/real_bench.py synth-seg); bank from ok images',
                  anchors=[], goals=dict(image_auroc=0.98, pixel_auroc=0.97)),
    'elpv': dict(title='ELPV solar cells, good parts only (binary)', split='elpv', normal='p0', supervised='elpv', supervised_key='binary_auc',
                 supervised_name='frozen-feature classifier (supervised), binary AUC',
                 protocol='Deitsch et al. split of the classification benchmark; bank from training cells of defect probability 0; '
                          'binary test: defective = probability ≥ 0.67 (p67, p100), p33 counted as functional',
                 anchors=[], goals=dict(binary_auroc=None)),
}


def differnet_table(a):
    "Magnetic tile split as DifferNet split it: its training list of Free tiles (a share held out as validation), everything else for test."
    from defect_nb.data import load_table
    root = datasets_root(a.data)
    if root is None or not (root / 'magnetic-tile').is_dir():
        sys.exit("magnetic-tile not found: pass --data DATASETS_FOLDER or set DEFECT_NB_DATASETS (README: Datasets)")
    t = load_table(root / 'magnetic-tile'); attrs = dict(t.attrs)
    names = set(DIFFERNET_LIST.read_text().split()); base = t.image.map(lambda p: Path(p).name)
    train = ((t.label == 'Free') & base.isin(names)).to_numpy()
    if train.sum() != len(names): sys.exit(f"{DIFFERNET_LIST.name} names {len(names)} Free tiles; this dataset has {int(train.sum())} of them")
    split = np.where(train, 'train', 'test').astype(object)
    idx = np.flatnonzero(train); split[np.random.default_rng(42).choice(idx, int(round(0.15 * len(idx))), replace=False)] = 'valid'
    t = t.assign(split=split).reset_index(drop=True); t.attrs.update(attrs)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('name', choices=list(BENCH))
    ap.add_argument('--data', help='folder holding magnetic-tile/ (default $DEFECT_NB_DATASETS)')
    ap.add_argument('--backbone', help='default: train_anomaly\'s'); ap.add_argument('--size', type=int, help='default: train_anomaly\'s')
    ap.add_argument('--coreset', type=float, help='bank size: fraction of training patches (≤ 1) or rows (default: train_anomaly\'s)')
    ap.add_argument('--sigma', type=float, help='Gaussian blur of the maps (default: train_anomaly\'s)')
    ap.add_argument('--layers', type=int, nargs='+', help="backbone stages whose features make a patch, e.g. 1 2 for the stride-4 grid (default: train_anomaly's 2 3)")
    ap.add_argument('--center', choices=['on', 'off'], help="subtract each image's mean patch feature (default: train_anomaly's, on)")
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--out', default=str(RESULTS), help='results folder (default bench/results; smoke runs: its smoke/)')
    ap.add_argument('--no-global', action='store_true', help='PatchCore alone: no global term in the image score (results file NAME-patchcore)')
    ap.add_argument('--variant', type=lambda v: v if v.replace('-', '').isalnum() else ap.error(f'--variant {v!r}: letters, digits and dashes only'),
                    help='a measured variant, not the default: results file and run folder NAME-VARIANT, so the default row is never overwritten')
    ap.add_argument('--reuse', action='store_true', help='evaluate and export the finished run in --work instead of training again')
    a = ap.parse_args()
    from defect_nb.anomaly import train_anomaly, evaluate_anomaly, export_anomaly
    from defect_nb.inference import bank_index, nn_distance
    from sklearn.metrics import roc_auc_score
    b = BENCH[a.name]; work = Path(a.work); t_all = time.perf_counter()
    opts = {k: v for k, v in dict(backbone=a.backbone, size=a.size or (64 if a.smoke else None), coreset=a.coreset, sigma=a.sigma,
                                 layers=a.layers, center=None if a.center is None else a.center == 'on').items() if v is not None}
    if a.no_global: opts['global_stage'] = None
    table = differnet_table(a) if a.name == 'mt-differnet' else table_for(b['split'], a, work)
    if a.name == 'elpv': table = table.assign(mask=None) if 'mask' in table else table
    name = f"anomaly-{a.name}{'-patchcore' if a.no_global else ''}{'-' + a.variant if a.variant else ''}"
    tag = name + ('-smoke' if a.smoke else '')
    if a.reuse and (work / tag / 'bank.npy').exists():
        from defect_nb.train import Run, load_config
        run = Run(work / tag, config=load_config(work / tag))
    else: run = train_anomaly(table, b['normal'], out=work / tag, overwrite=True, progress=not a.smoke, **opts)
    cfg = run.config
    ev = evaluate_anomaly(run.path, progress=not a.smoke)
    meta = export_anomaly(run.path, work / f'{tag}-bundle', overwrite=True, speed_n=5 if a.smoke else 30)
    m = dict(ev.metrics)
    if a.name == 'elpv':
        t = ev.table; y = t.label.isin(['p67', 'p100']).to_numpy()
        m['binary_auroc'] = float(roc_auc_score(y, t.defect_score))
    bank = np.load(run.path / 'bank.npy'); q = np.random.default_rng(0).normal(size=(cfg['grid'][0] * cfg['grid'][1], cfg['dim'])).astype(np.float32)
    q = bank[np.random.default_rng(0).integers(0, len(bank), len(q))] + 0.1 * q
    search = {}
    for be in ('numpy', 'faiss'):
        try: ix = bank_index(bank, be)
        except ImportError: continue                                           # faiss-cpu is optional
        nn_distance(q, ix); ts = []
        for _ in range(10): t0 = time.perf_counter(); nn_distance(q, ix); ts.append(time.perf_counter() - t0)
        search[be] = round(1000 * float(np.median(ts)), 2)
    n_good = cfg['n_train_images']; sec = cfg['seconds']
    train_s = sec['features'] + sec['coreset']
    # to 1,000 images: features grow with the images; a greedy coreset of a fixed fraction costs patches × picks, so it grows with the square
    grow = 1000 / max(1, n_good); core_1000 = sec['coreset'] * (grow ** 2 if cfg['coreset'] <= 1 else grow)
    sup = None
    if b.get('supervised') and (Path(a.out) / f"{b['supervised']}.json").exists():
        s = json.loads((Path(a.out) / f"{b['supervised']}.json").read_text())
        sup = dict(name=b['supervised_name'], value=s.get(b['supervised_key']), ci=s.get(b['supervised_key'] + '_ci'))
    r = dict(name=name, title=b['title'] + (' (PatchCore alone, no global term)' if a.no_global else '') + (f": variant {a.variant}, not the default" if a.variant else ''), protocol=b['protocol'], smoke=a.smoke, machine=machine(),
             command='python bench/anomaly_bench.py ' + ' '.join(sys.argv[1:]), backbone=cfg['backbone'], size=cfg['preprocess']['size'], layers=cfg['layers'],
             center=cfg.get('center', False), sigma=cfg['sigma'], global_term=cfg.get('global'), coreset=cfg['coreset'], coreset_dim=cfg.get('coreset_dim'), bank_size=cfg['bank_size'], n_patches=cfg['n_patches'], dim=cfg['dim'], normal_class=b['normal'],
             n_train_good=n_good, n_valid=int((table.split == 'valid').sum()), n_test=m['n'], n_test_defective=m['n_defective'],
             metrics={k: v for k, v in m.items() if k not in ('task',)}, threshold_source=json.loads((run.path / 'threshold.json').read_text())['source'],
             train_seconds=dict(sec, per_1000_good_images=round(sec['features'] * grow + core_1000, 1), per_1000_linear=round(1000 * train_s / max(1, n_good), 1)),
             inference_ms_b1=meta['report']['onnx_fp32'], parity=meta['parity'], search_ms_one_image=search, search_backend_default=cfg['search'],
             supervised=sup, anchors=b['anchors'], goals=b['goals'],
             reached={k: (m.get(k) is not None and m[k] >= v) for k, v in b['goals'].items() if v is not None},
             wall_seconds=round(time.perf_counter() - t_all, 1), load_average=[round(v, 2) for v in os.getloadavg()])
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / f"{r['name']}.json").write_text(json.dumps(r, indent=2, default=float))
    (out / f"{r['name']}.md").write_text(markdown(r))
    print(markdown(r))


def markdown(r):
    m = r['metrics']; f = lambda v: '—' if v is None else f'{v:.3f}'
    ci = lambda v: '' if not v else f' [{v[0]:.3f}, {v[1]:.3f}]'
    L = [f"# {r['title']}", '', f"Protocol: {r['protocol']}.", '',
         '| measure | ours (test) | goal | reached |', '|---|---|---|---|']
    for k in ('image_auroc', 'pixel_auroc', 'pro', 'binary_auroc', 'recall', 'false_alarm_rate'):
        if k in m and m[k] is not None:
            g = r['goals'].get(k)
            L.append(f"| {k} | {f(m[k])}{ci(m.get(k + '_ci'))} | {'≥ ' + f(g) if g else ''} | {('yes' if r['reached'].get(k) else '**no**') if g else ''} |")
    if r['supervised'] and r['supervised']['value'] is not None:
        L.append(f"| beside: {r['supervised']['name']} | {f(r['supervised']['value'])}{ci(r['supervised']['ci'])} | | |")
    for n, k, v in r['anchors']: L.append(f"| published: {n} | {k} {v:.3f} | | |")
    if m.get('per_class_auroc'): L += ['', 'Image AUROC of each defect class against the good test images: ' +
                                       ', '.join(f"{c} {v:.3f}" for c, v in m['per_class_auroc'].items()) + '.']
    if m.get('per_class_pixel_auroc'): L += ['', 'Pixel AUROC of each defect class (its images and the good ones): ' +
                                             ', '.join(f"{c} {v:.3f}" for c, v in m['per_class_pixel_auroc'].items()) + '.']
    t = r['train_seconds']; inf = r['inference_ms_b1']
    L += ['', f"Model: {r['backbone']}, {r['size']} px, layers {r['layers']}, {r['dim']}-dim patches{', centred per image' if r.get('center') else ''}, "
              f"maps blurred with σ {r.get('sigma', 4):g} px; "
              + (f"a global term (the Mahalanobis distance of stage {r['global_term']['stage']}'s pooled mean and std, {r['global_term']['dim']} dims, to the good "
                 f"training images' Gaussian) added to each image's score, in map units by the ratio of interquartile ranges on {r['global_term']['reference']} ({r['global_term']['weight']:.3g}); " if r.get('global_term') else '')
              + f"bank {r['bank_size']:,} of "
              f"{r['n_patches']:,} training patches (greedy coreset {r['coreset']:g}) from {r['n_train_good']} good images; threshold {f(m['threshold'])} "
              f"({r['threshold_source']}).",
          f"Training (feature extraction {t['features']:.0f} s + coreset {t['coreset']:.0f} s for {r['n_train_good']} images): {t['per_1000_good_images']:.0f} s per 1,000 good images "
          f"(goal ≤ 300 s; features scaled linearly, the coreset with the square of the images, as patches × picks); validation scoring and the rest: {t['total'] - t['features'] - t['coreset']:.0f} s.",
          f"Inference, batch 1, end to end through the bundle's Predictor (onnxruntime + {r['search_backend_default']}): median {inf['b1_p50_ms']:.0f} ms, "
          f"p95 {inf['b1_p95_ms']:.0f} ms per image (goal ≤ 100 ms); bundle {inf['mb']:.1f} MB; parity with PyTorch: max |Δmap| {r['parity']['max_abs_diff']:.1e}.",
          f"Nearest-neighbour search of one image's patches against this bank: " + ', '.join(f"{k} {v} ms" for k, v in r['search_ms_one_image'].items()) + '.',
          f"Machine: {r['machine']['cores']} CPU cores, no GPU, shared with other jobs (load average at the end {r.get('load_average')}: times are upper bounds). Wall time {r['wall_seconds']:.0f} s.",
          '', f"Command: `{r['command']}`", '']
    return '\n'.join(L)


if __name__ == '__main__':
    main()

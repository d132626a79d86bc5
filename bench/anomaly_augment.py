"""Does augmenting the good parts help PatchCore on magnetic tile? A validation study, not part of the package (12_anomaly cites it).

Three things a practitioner would try first, each measured on the benchmark's validation split (190 Free, 78 defective
tiles; bank from the 572 Free training tiles, as `python bench/anomaly_bench.py mt`; PatchCore alone, no global term):
- the bank built from flipped (h, v, hv) or all eight dihedral views of every good tile: each view's patches are
  subsampled at random to the original count, then the same greedy coreset keeps the same number of rows (4,576);
- test-time views: maps of the flipped image flipped back and averaged (none, h, or h+v+hv);
- the image score: the map's maximum (the package's), the mean of its 5 largest patch distances, or PatchCore's
  reweighting of the largest by the density of the bank around its nearest neighbour (Roth et al. 2022, eq. 7, k rows).
Patch features of every view are cached in --work. Writes bench/results/anomaly_augment.json.

    python bench/anomaly_augment.py [--work runs/anom3]
"""
import sys, time, json, argparse
from pathlib import Path
import numpy as np, cv2
import sklearn.metrics as skm
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from real_bench import table_for, machine, RESULTS
from defect_nb.anomaly import PatchFeatures, patch_features, greedy_coreset
from defect_nb.inference import bank_index, anomaly_maps, nn_distance
from defect_nb.data import MaskReader
from defect_nb.core import load_image

VIEWS = {'id': lambda x: x, 'h': lambda x: x[:, ::-1], 'v': lambda x: x[::-1], 'hv': lambda x: x[::-1, ::-1],
         't': lambda x: x.swapaxes(0, 1), 'r90': lambda x: np.rot90(x, 1), 'r270': lambda x: np.rot90(x, 3), 'tv': lambda x: x.swapaxes(0, 1)[::-1, ::-1]}
BACK = {'id': lambda m: m, 'h': lambda m: m[:, :, ::-1], 'v': lambda m: m[:, ::-1], 'hv': lambda m: m[:, ::-1, ::-1]}   # maps N×H×W back to the original view

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'anom3')); ap.add_argument('--data', help='folder holding magnetic-tile/ (default $DEFECT_NB_DATASETS)')
    a = ap.parse_args(); W = Path(a.work); W.mkdir(parents=True, exist_ok=True); t0 = time.time()
    size, sigma, k_bank = 320, 8., 4576
    t = table_for('mt', argparse.Namespace(smoke=False, data=a.data), ROOT / 'runs' / 'bench')
    good = t[(t.split == 'train') & (t.label == 'Free')]; ev = t[t.split == 'valid'].reset_index(drop=True)
    model = PatchFeatures('efficientnet_lite0', (2, 3), center=True)
    def files(paths, view):
        if view == 'id': return list(paths)
        d = W / 'aug' / view; d.mkdir(parents=True, exist_ok=True); out = []
        for p in paths:
            q = d / (Path(p).stem + '.png')
            if not q.exists():
                im = np.ascontiguousarray(VIEWS[view](load_image(p))); cv2.imwrite(str(q), im[..., ::-1] if im.ndim == 3 else im)
            out.append(str(q))
        return out
    def feats(paths, view, key):
        fp = W / f'mt-l23-c1-320-{key}-{view}.npy'
        if fp.exists(): return np.load(fp)
        f = patch_features(model, files(paths, view), size, 16, False, engine='onnx'); np.save(fp, f); return f
    F = {v: feats(good.image, v, 'train') for v in VIEWS}; d = F['id'].shape[1]
    F = {v: f.transpose(0, 2, 3, 1).reshape(-1, d) for v, f in F.items()}
    VF = {v: feats(ev.image, v, 'valid') for v in BACK}
    y = (ev.label != 'Free').to_numpy(); mr = MaskReader(size)
    masks = np.stack([(mr(r) > 0) if r['label'] != 'Free' else np.zeros((size, size), bool) for r in ev.to_dict('records')])[:, ::2, ::2].ravel()
    rng = np.random.default_rng(0)
    def bank(views):
        X = F['id'] if len(views) == 1 else np.concatenate([F[v][rng.choice(len(F[v]), len(F['id']) // len(views), replace=False)] for v in views])
        return np.ascontiguousarray(X[greedy_coreset(X, k_bank, 42, 32)])
    def aurocs(s, maps=None):
        r = dict(image_auroc=round(float(skm.roc_auc_score(y, s)), 4))
        if maps is not None: r['pixel_auroc'] = round(float(skm.roc_auc_score(masks, maps[:, ::2, ::2].ravel())), 4)
        r['per_class'] = {c: round(float(skm.roc_auc_score(np.r_[np.zeros((~y).sum()), np.ones((ev.label == c).sum())], np.r_[s[~y], s[ev.label == c]])), 3)
                          for c in sorted(set(ev.label) - {'Free'})}
        return r
    rows = []
    for name, views in [('base', ['id']), ('flips', ['id', 'h', 'v', 'hv']), ('dihedral', list(VIEWS))]:
        B = bank(views); ix = bank_index(B)
        for tta in (['id'], ['id', 'h'], ['id', 'h', 'v', 'hv']):
            maps = np.mean([BACK[v](anomaly_maps(VF[v], ix, size, sigma)) for v in tta], 0)
            rows.append(dict(bank=name, views='+'.join(tta), score='map max', **aurocs(maps.reshape(len(maps), -1).max(1), maps))); print(rows[-1], flush=True)
        if name != 'base': continue
        Q = VF['id'].transpose(0, 2, 3, 1).reshape(len(ev), -1, d)     # image scores from the raw patch distances of the base bank
        D = np.stack([nn_distance(q, ix) for q in Q])
        rows.append(dict(bank=name, views='id', score='largest patch distance', **aurocs(D.max(1))))
        rows.append(dict(bank=name, views='id', score='mean of the 5 largest', **aurocs(-np.sort(-D, 1)[:, :5].mean(1))))
        b2 = (B * B).sum(1); BB = b2[:, None] + b2[None] - 2 * B @ B.T
        for k in (3, 9):
            nbr = np.argsort(BB, 1)[:, 1:k + 1]; s = []
            for q in Q:
                dq = np.sqrt(np.maximum((q * q).sum(1)[:, None] + b2[None] - 2 * q @ B.T, 0)); j = dq.min(1).argmax(); i = dq[j].argmin()
                dd = dq[j, np.r_[i, nbr[i]]]; s.append((1 - np.exp(dq[j, i] - dd.min()) / np.exp(dd - dd.min()).sum()) * dq[j, i])
            rows.append(dict(bank=name, views='id', score=f'largest, reweighted (k={k})', **aurocs(np.array(s))))
        for r in rows[-4:]: print(r, flush=True)
    res = dict(rows=rows, protocol='magnetic-tile validation split of bench/real_bench.py mt (seed 42): 190 Free, 78 defective; bank 4,576 rows from the 572 Free training tiles; '
                                   'Lite0, 320 px, layers 2+3, centred, σ 8; PatchCore alone; pixel AUROC on every second pixel',
               command='python bench/anomaly_augment.py', machine=machine(), wall_s=round(time.time() - t0))
    (RESULTS / 'anomaly_augment.json').write_text(json.dumps(res, indent=1)); print('wall', res['wall_s'])

if __name__ == '__main__': main()

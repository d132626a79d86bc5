"""Does keeping the magnetic tiles' aspect ratio help PatchCore? A study, not part of the package (12_anomaly cites it).

The tiles' sides differ by up to 2.7 times; the package squeezes every one to a 320 px square. Modes:
square (the package's input), aspect (resized to the square's area at the tile's own aspect ratio, sides multiples of 32),
native (each tile at its own size, sides rounded to multiples of 32). Bank: 0.5% greedy coreset of the training split's
Free tiles (the benchmark's split, seed 42); PatchCore alone (no global term); σ 8 px at the 320 px scale; pixel AUROC on
every second pixel of the masks at their own size. Appends one JSON line per run to bench/results/anomaly_aspect.jsonl.

    python bench/anomaly_aspect.py --mode square|aspect|native [--side 320] [--split valid|test]
"""
import sys, time, json, argparse
from pathlib import Path
import numpy as np, torch, cv2
import sklearn.metrics as skm
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))
from real_bench import table_for, machine
from defect_nb.anomaly import PatchFeatures, greedy_coreset
from defect_nb.inference import bank_index, nn_distance
from defect_nb.data import MaskReader
from defect_nb.core import load_image
torch.set_num_threads(2)
ap = argparse.ArgumentParser(); ap.add_argument('--mode', default='aspect'); ap.add_argument('--side', type=int, default=320)
ap.add_argument('--split', default='valid'); ap.add_argument('--center', type=int, default=1)
ap.add_argument('--data', help='folder holding magnetic-tile/ (default $DEFECT_NB_DATASETS)')
a = ap.parse_args()
A = argparse.Namespace(smoke=False, data=a.data)
t = table_for('mt', A, ROOT / 'runs' / 'bench')
model = PatchFeatures('efficientnet_lite0', (2, 3), center=bool(a.center)).eval()
mean = np.array([0.485, 0.456, 0.406], np.float32); std = np.array([0.229, 0.224, 0.225], np.float32)
def dims(h, w):
    if a.mode == 'square': return a.side, a.side
    if a.mode == 'native': return max(32, int(round(h / 32)) * 32), max(32, int(round(w / 32)) * 32)
    s = a.side / np.sqrt(h * w); return max(32, int(round(h * s / 32)) * 32), max(32, int(round(w * s / 32)) * 32)
def feats(path):
    im = load_image(path)
    if im.ndim == 2: im = np.repeat(im[..., None], 3, 2)
    h, w = im.shape[:2]; H, W = dims(h, w)
    x = cv2.resize(im, (W, H), interpolation=cv2.INTER_AREA if H * W < h * w else cv2.INTER_LINEAR).astype(np.float32) / 255
    x = torch.from_numpy(((x - mean) / std).transpose(2, 0, 1)[None])
    with torch.no_grad(): f = model(x)[0].numpy()
    return f, (h, w)
t0 = time.time()
good = t[(t.split == 'train') & (t.label == 'Free')]
F = [feats(p)[0] for p in good.image]
X = np.concatenate([f.reshape(f.shape[0], -1).T for f in F]); print('train', len(F), X.shape, f'{time.time()-t0:.0f}s', flush=True)
k = int(round(0.005 * len(X))); idx = greedy_coreset(X, k, 42, 32); bank = np.ascontiguousarray(X[idx]); index = bank_index(bank)
print('bank', bank.shape, f'{time.time()-t0:.0f}s', flush=True)
ev = t[t.split == a.split].reset_index(drop=True); mr = MaskReader(None)
scores, P, T = [], [], []
for r in ev.to_dict('records'):
    f, (h, w) = feats(r['image']); d, gh, gw = f.shape
    dist = nn_distance(f.reshape(d, -1).T, index).reshape(gh, gw)
    m = cv2.resize(dist, (w, h), interpolation=cv2.INTER_LINEAR)
    sig = 8 * np.sqrt(h * w) / 320     # σ 8 px at the 320 px scale
    m = cv2.GaussianBlur(m, (0, 0), sig); scores.append(float(m.max()))
    tm = mr(r) > 0; P.append(m[::2, ::2].ravel()); T.append(tm[::2, ::2].ravel())
y = (ev.label != 'Free').to_numpy()
P = np.concatenate(P); T = np.concatenate(T)
res = dict(mode=a.mode, side=a.side, split=a.split, center=a.center, image_auroc=float(skm.roc_auc_score(y, scores)), pixel_auroc=float(skm.roc_auc_score(T, P)),
           per_class={c: float(skm.roc_auc_score(np.r_[np.zeros((ev.label == 'Free').sum()), np.ones((ev.label == c).sum())],
                      np.r_[np.array(scores)[ev.label == 'Free'], np.array(scores)[ev.label == c]])) for c in sorted(set(ev.label) - {'Free'})},
           seconds=round(time.time() - t0), command='python bench/anomaly_aspect.py ' + ' '.join(sys.argv[1:]), machine=machine())
print(json.dumps(res)); open(ROOT / 'bench' / 'results' / 'anomaly_aspect.jsonl', 'a').write(json.dumps(res) + '\n')

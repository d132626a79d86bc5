"""Speed of the offline backbones on this machine: training and inference images/s, classifier and U-Net encoder, and
the cost of test-time views.

    python bench/speed.py [--smoke]

Random images (speed does not depend on content); torch threads as the machine gives them. Training = forward +
backward + SGD step at batch 16 on the whole network; inference = `torch.inference_mode` at batch 32, PyTorch FP32 and
the exported ONNX FP32 (onnxruntime). Good-parts-only anomaly detection (`defect_nb.anomaly`, PatchCore) has no training
step to time (its training is one feature pass plus the coreset, in bench/results/anomaly-*.md); its batch-1 figure is the
whole torch-free prediction after decoding: ONNX patch features, the nearest-neighbour search against a memory bank of
the benchmarks' size (random rows: the search does not depend on content), the map (upsampled, blurred) and the score.
Writes bench/results/speed.json and speed.md.
"""
import argparse, json, os, sys, time, tempfile
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from real_bench import machine, RESULTS

def rate(f, n, reps):
    f(); t = time.perf_counter()
    for _ in range(reps): f()
    return n * reps / (time.perf_counter() - t)

def anomaly_row(opts, size, reps):
    "Speed of a PatchCore model: ONNX patch features at batch 32, and one torch-free prediction at batch 1 (features, search, map, score)."
    from defect_nb.anomaly import PatchFeatures
    from defect_nb.features import features_onnx
    from defect_nb.export import ort_session
    from defect_nb.inference import bank_index, anomaly_maps, anomaly_score, global_distance
    m = PatchFeatures(opts['backbone'], opts['layers'], pretrained=False, center=opts['center'], global_stage=opts['global_stage'])
    row = dict(arch='patchcore', backbone=opts['backbone'], tta='none', size=size, params_M=round(sum(p.numel() for p in m.parameters()) / 1e6, 2),
               layers=list(opts['layers']), bank=opts['bank'], dim=m.dim)
    x = torch.randn(32, 3, size, size)
    with torch.inference_mode(): row['infer_torch_img_s'] = round(rate(lambda: m(x), 32, reps), 1)
    p = Path(tempfile.mkdtemp()) / 'm.onnx'; features_onnx(m, size, p); s = ort_session(p); xn = x.numpy()
    row['infer_onnx_img_s'] = round(rate(lambda: s.run(None, {'input': xn}), 32, reps), 1)
    rng = np.random.default_rng(0); index = bank_index(rng.standard_normal((opts['bank'], m.dim)).astype(np.float32))
    g = m.global_dim; mean, prec = np.zeros(g, np.float32), np.eye(g, dtype=np.float32)
    def one():
        f, gf = s.run(None, {'input': xn[:1]})[:2]
        return anomaly_score(anomaly_maps(f, index, size, 8.), global_distance(gf, mean, prec), 1., 0.)
    row['infer_onnx_b1_ms'] = round(1000 / rate(one, 1, reps * 5), 1)
    return row

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--smoke', action='store_true'); ap.add_argument('--out', default=str(RESULTS)); a = ap.parse_args()
    from defect_nb.models import build_model
    from defect_nb.export import to_onnx, ort_session
    reps = 1 if a.smoke else 3; rows = []; load0 = [round(x, 2) for x in os.getloadavg()]   # other jobs on the cores slow every figure
    cases = [('probe', dict(backbone=b, tta=t), s, 'classify') for b, s in [('efficientnet_lite0', 224), ('efficientnet_lite1', 240), ('efficientnet_lite2', 260)]
             for t in ['none', 'hflip', 'dihedral']] + \
            [('unet_lite0', dict(encoder=b), 192, 'segment') for b in ('efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2')] + \
            [('patchcore', dict(backbone='efficientnet_lite0', layers=(2, 3), bank=4576, global_stage=4, center=True), 320, 'anomaly'),   # magnetic tile's and ELPV's setting
             ('patchcore', dict(backbone='efficientnet_lite0', layers=(1, 2), bank=1280, global_stage=4, center=False), 320, 'anomaly')]  # the synthetic benchmark's finer grid
    if a.smoke: cases = [cases[0], cases[1], cases[9], cases[-2]]
    for arch, opts, size, task in cases:
        size = 64 if a.smoke else size
        if task == 'anomaly':
            rows.append(anomaly_row(opts, size, reps)); print(rows[-1], flush=True); continue
        m, _, info = build_model(arch, 2, task, pretrained=False, **opts)
        row = dict(arch=arch, backbone=opts.get('backbone', opts.get('encoder')), tta=opts.get('tta', 'none'), size=size, params_M=round(info['params'] / 1e6, 2))
        if opts.get('tta', 'none') == 'none':                       # training speed: views do not train
            m.train(); opt = torch.optim.SGD(m.parameters(), lr=1e-3); x = torch.randn(16, 3, size, size)
            y = torch.randint(0, 2, (16,) if task == 'classify' else (16, size, size))
            def step():
                opt.zero_grad(); out = m(x); torch.nn.functional.cross_entropy(out, y).backward(); opt.step()
            row['train_img_s'] = round(rate(step, 16, reps), 1)
        m.eval(); x = torch.randn(32, 3, size, size)
        with torch.inference_mode(): row['infer_torch_img_s'] = round(rate(lambda: m(x), 32, reps), 1)
        p = Path(tempfile.mkdtemp()) / 'm.onnx'; to_onnx(m, p, size); s = ort_session(p); xn = x.numpy()
        row['infer_onnx_img_s'] = round(rate(lambda: s.run(None, {'input': xn}), 32, reps), 1)
        row['infer_onnx_b1_ms'] = round(1000 / rate(lambda: s.run(None, {'input': xn[:1]}), 1, reps * 5), 1)
        rows.append(row); print(row, flush=True)
    res = dict(rows=rows, machine=dict(machine(), load_avg_start=load0, load_avg_end=[round(x, 2) for x in os.getloadavg()]), smoke=a.smoke, command='python bench/speed.py' + (' --smoke' if a.smoke else ''))
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / 'speed.json').write_text(json.dumps(res, indent=2))
    md = ['| model | backbone | test-time views | px | M params | train img/s | PyTorch img/s | ONNX img/s (batch 32) | ONNX ms (batch 1) |', '|---|---|---|---|---|---|---|---|---|']
    name = lambda r: f"patchcore (layers {'+'.join(map(str, r['layers']))}, bank {r['bank']:,}; batch 1: whole prediction)" if 'bank' in r else r['arch']
    md += [f"| {name(r)} | {r['backbone']} | {r['tta']} | {r['size']} | {r['params_M']} | {r.get('train_img_s', '—')} | {r['infer_torch_img_s']} | {r['infer_onnx_img_s']} | {r['infer_onnx_b1_ms']} |" for r in rows]
    (out / 'speed.md').write_text('\n'.join(md) + f"\n\n{res['machine']['cores']} CPU cores, torch {res['machine']['torch']}, onnxruntime {res['machine']['onnxruntime']}. Command: `{res['command']}`\n")
    print('\n'.join(md))

if __name__ == '__main__': main()

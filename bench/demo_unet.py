"""Which U-Net setting fits the demo's four minutes? Images per class, input size and epochs, on the demo's own data.

    python bench/demo_unet.py [--smoke] [--variants 40:128:8,100:128:6,100:128:6:5e-3,100:t128:6:5e-3]

Each variant N:SIZE:EPOCHS[:LR] trains the demo's U-Net (`train_segmenter`, method fastai, 1 frozen + EPOCHS) on N images per
class (good parts included), at learning rate LR (default: the library's, 2e-3), of the demo's data (`defect-nb demo`: synthetic,
easy, half good parts, 200 px, seed 0) and scores test Dice on defective images, per class too. SIZE is the side the whole
image is resized to, or tT for windows of T px cut at the images' own resolution (`train(..., tile=T)`, half of them centred
near a defect; evaluated on whole 200 px images). Writes bench/results/demo_unet.json and .md.
"""
import argparse, json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from real_bench import machine, RESULTS, ROOT

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--variants', default='100:128:6,100:128:6:5e-3,100:t128:6:5e-3,100:t128:5:5e-3'); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'demo_unet')); ap.add_argument('--out', default=str(RESULTS))
    a = ap.parse_args()
    from defect_nb.synth import synthesize
    from defect_nb.data import load_table, make_split, subset
    from defect_nb.train import train_segmenter
    from defect_nb.evaluate import evaluate
    work = Path(a.work); data = work / ('data-smoke' if a.smoke else 'data'); t0 = time.perf_counter()
    synthesize(data, 4 if a.smoke else 100, 64 if a.smoke else 200, seed=0, difficulty='easy', ok_share=0.5, progress=False)
    rows = []
    for v in a.variants.split(',')[:1 if a.smoke else None]:
        n, size, epochs, *lr = v.split(':'); n, epochs = int(n), int(epochs); lr = float(lr[0]) if lr else None
        tile = int(size[1:]) if size.startswith('t') else None; size = None if tile else int(size)
        if a.smoke: n, epochs, size, tile = 3, 1, (None if tile else 64), (64 if tile else None)
        t = subset(make_split(load_table(data), seed=42), n)
        ts = time.perf_counter()
        r = train_segmenter(t, method='fastai', epochs=epochs, size=size, tile=tile, lr=lr, out=work / f'{v}'.replace(':', '-'), overwrite=True, progress=False,
                            num_workers=0 if a.smoke else None)
        train_s = time.perf_counter() - ts
        ev = evaluate(r.path, progress=False); m = ev.metrics
        per = ev.table[ev.table.label != 'ok'].groupby('label').dice.mean().round(3).to_dict() if 'label' in ev.table else {}
        rows.append(dict(variant=v, images_per_class=n, size=size or f'native, {tile} px tiles', tile=tile, epochs=f'1 frozen + {epochs}', lr=lr or 2e-3, n_train=int((t.split == 'train').sum()),
                         train_seconds=round(train_s, 1), dice_defective=m['dice_defective'], dice_by_class=per))
        print(rows[-1], flush=True)
    res = dict(rows=rows, smoke=a.smoke, machine=machine(), wall_seconds=round(time.perf_counter() - t0, 1),
               command='python bench/demo_unet.py' + (' --smoke' if a.smoke else f' --variants {a.variants}'))
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / 'demo_unet.json').write_text(json.dumps(res, indent=2))
    md = ['| images per class | px | epochs | learning rate | training images | train s | test Dice (defective images) | weakest classes |', '|---|---|---|---|---|---|---|---|']
    md += [f"| {r['images_per_class']} | {r['size']} | {r['epochs']} | {r.get('lr', 2e-3):g} | {r['n_train']} | {r['train_seconds']:.0f} | {r['dice_defective']:.3f} | "
           f"{', '.join(f'{k} {v:.2f}' for k, v in sorted(r['dice_by_class'].items(), key=lambda kv: kv[1])[:2])} |" for r in rows]
    (out / 'demo_unet.md').write_text('\n'.join(md) + f"\n\nThe demo's data (synthetic, easy, half good parts, 200 px); {res['machine']['cores']} CPU cores. "
                                      f"Wall time {res['wall_seconds']:.0f} s. Command: `{res['command']}`\n")
    print('\n'.join(md))

if __name__ == '__main__': main()

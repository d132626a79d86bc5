"""Is a frozen encoder with a longer-trained decoder the better use of a CPU hour? (issue 15, item 4)

    python bench/frozen_encoder.py [--epochs 70] [--smoke] [--reuse RUN]

Trains the magnetic-tile U-Net of `real_bench.py mt` (unet_lite0, 192 px, batch 8, loss ce_dice, lr 2e-3, the same 6:2:2 split)
with its ImageNet encoder frozen throughout, batch norm included: only the decoder and the head learn, so no gradient flows
into the encoder and an epoch costs less. More epochs fit in the time of the benchmark's 1 frozen + 30 fine-tuning epochs.
Scores the test split as `real_bench.py mt` does and writes bench/results/mt-frozen-encoder.json and .md, beside mt.json.
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from real_bench import machine, RESULTS, ROOT, table_for, segment_report


# The fine-tuned recipe at four budgets on the same split (one run each; bench/results/mt.json, its note):
# (epochs after the frozen one, training seconds, best validation Dice, test defect IoU)
FINE_TUNED = [(6, 646, 0.66, 0.319), (12, 1279, 0.76, 0.444), (18, 1752, 0.82, 0.493), (30, 3177, 0.85, 0.572)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, default=70); ap.add_argument('--data', help='folder holding magnetic-tile/ (default $DEFECT_NB_DATASETS)')
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--out', default=str(RESULTS))
    ap.add_argument('--reuse', help='report on this finished run folder instead of training'); ap.add_argument('--smoke', action='store_true')
    a = ap.parse_args()
    import pandas as pd
    from defect_nb.train import train, load_config
    from defect_nb.evaluate import evaluate

    work = Path(a.work); t0 = time.perf_counter()
    table = table_for('mt', argparse.Namespace(data=a.data, smoke=a.smoke), work)
    epochs = 1 if a.smoke else a.epochs
    run = Path(a.reuse) if a.reuse else work / ('mt-frozen-encoder' + ('-smoke' if a.smoke else ''))
    if not a.reuse:
        train(table, 'segment', 'unet_lite0', method='fastai', epochs=epochs, size=64 if a.smoke else 192, bs=8, out=run, overwrite=True,
              seed=42, loss='ce_dice', progress=not a.smoke, encoder_frozen=True, num_workers=0 if a.smoke else None)
    cfg = load_config(run); hist = pd.read_csv(run / 'history.csv')
    ev = evaluate(run, 'test', progress=False)
    sec = hist.seconds.to_numpy(); med = float(pd.Series(sec).median())
    res = dict(name='mt-frozen-encoder', title='Magnetic tile, defect segmentation: encoder frozen throughout', smoke=a.smoke,
               arch='unet_lite0', size=cfg['preprocess']['size'], epochs=f"{cfg['freeze_epochs']} frozen + {cfg['epochs']}, encoder frozen throughout",
               best_epoch=cfg.get('best_epoch'), monitor=cfg['monitor'], loss=cfg['loss'], lr=cfg['lr'],
               n_train=int((table.split == 'train').sum()), train_seconds=round(float(sec.sum()), 1),
               epoch_seconds_median=round(med, 1), train_seconds_at_median=round(med * len(sec), 1),
               valid_dice=[round(float(v), 4) for v in hist['dice']] if 'dice' in hist else None,
               machine=machine(), command='python bench/frozen_encoder.py' + (' --smoke' if a.smoke else f' --epochs {a.epochs}') + (f' --reuse {a.reuse}' if a.reuse else ''))
    res.update(segment_report(ev, cfg))
    mt = RESULTS / 'mt.json'
    if mt.exists() and not a.smoke:
        m = json.loads(mt.read_text())
        if m.get('encoder_frozen'): m = m.get('before') or {}        # mt.json is now this recipe; the fine-tuned figures are its 'before'
        res['fine_tuned'] = {k: m.get(k) for k in ('epochs', 'train_seconds', 'iou_defective', 'iou_defective_ci', 'dice_defective', 'image_auroc', 'command')}
    res['fine_tuned_budgets'] = [dict(epochs=e, train_seconds=t, best_valid_dice=v, iou_defective=i) for e, t, v, i in FINE_TUNED]
    res['wall_seconds'] = round(time.perf_counter() - t0, 1)
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / 'mt-frozen-encoder.json').write_text(json.dumps(res, indent=2, default=float))
    f = res.get('fine_tuned') or {}
    ci = lambda c: f" [{c[0]:.3f}, {c[1]:.3f}]" if c else ''
    md = [f"# {res['title']}", '',
          f"unet_lite0 at {res['size']} px, {res['epochs']}, loss {res['loss']}, lr {res['lr']:g}, batch 8, on the split of `real_bench.py mt` "
          f"({res['n_train']} training images). Best epoch {res['best_epoch']} by valid {res['monitor']}.", '',
          '| recipe | epochs | training s | test defect IoU [95% CI] | Dice | image AUROC |', '|---|---|---|---|---|---|',
          f"| encoder frozen throughout (this run) | {res['epochs']} | {res['train_seconds_at_median']:.0f} at the median epoch ({res['epoch_seconds_median']:.0f} s; {res['train_seconds']:.0f} as recorded) | "
          f"{res['iou_defective']:.3f}{ci(res.get('iou_defective_ci'))} | {res['dice_defective']:.3f} | {res['image_auroc']:.3f} |"]
    if f: md.append(f"| encoder fine-tuned (`{f['command']}`) | {f['epochs']} | {f['train_seconds']:.0f} | {f['iou_defective']:.3f}{ci(f.get('iou_defective_ci'))} | "
                    f"{f['dice_defective']:.3f} | {f['image_auroc']:.3f} |")
    md += ['', "The fine-tuned recipe at other budgets (one run each, same split; `mt.json`): "
           + '; '.join(f"1 frozen + {b['epochs']}: {b['train_seconds']} s, best validation Dice {b['best_valid_dice']:.2f}, test defect IoU {b['iou_defective']:.3f}"
                       for b in res['fine_tuned_budgets']) + f". This run's best validation Dice: {max(res['valid_dice'] or [float('nan')]):.3f}."]
    md += ['', "Training time: epochs × the median epoch time, since the recorded sum counts every epoch during which the 2 cores were "
           "shared with other jobs or the run was paused; the median epoch is what the run takes alone."]
    md += ['', f"Machine: {res['machine']['cores']} CPU cores, torch {res['machine']['torch']}. Wall time {res['wall_seconds']:.0f} s. Command: `{res['command']}`", '']
    (out / 'mt-frozen-encoder.md').write_text('\n'.join(md))
    print('\n'.join(md))


if __name__ == '__main__':
    main()

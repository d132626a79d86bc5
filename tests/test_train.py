"Training on tiny synthetic data: the loss falls, every epoch checkpoint reloads to the same predictions, runs are safe."
import json
import pandas as pd, pytest, torch
from fastai.callback.core import Callback
from defect_nb.data import load_table, make_split
from defect_nb.train import train_classifier, train_segmenter, load_model, list_epochs, RunError, load_config


class RecordPreds(Callback):
    "Predictions on a fixed batch after every epoch, to compare with the reloaded checkpoints."
    order = 100
    def __init__(self, xb): self.xb, self.preds = xb, []
    def after_epoch(self):
        self.model.eval()
        with torch.no_grad(): self.preds.append(self.model(self.xb).clone())
        self.model.train()


@pytest.fixture(scope='module')
def table(synth_small):
    return make_split(load_table(synth_small), seed=0, save=False)


def test_classifier_learns_and_checkpoints_reload(table, tmp_path):
    xb = torch.randn(4, 3, 48, 48)
    rec = RecordPreds(xb)
    r = train_classifier(table, 'small_cnn', epochs=4, size=48, bs=8, lr=1e-3, out=tmp_path / 'run', num_workers=0,
                         progress=False, aug=False, cbs=[rec])
    assert r.history.train_loss.iloc[-1] < r.history.train_loss.iloc[0]
    assert list_epochs(r.path) == [1, 2, 3, 4] and len(rec.preds) == 4
    for ep, expected in zip([1, 2, 3, 4], rec.preds):
        with torch.no_grad(): got = load_model(r.path, ep)(xb)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    best = load_model(r.path, 'best')
    with torch.no_grad(): torch.testing.assert_close(best(xb), rec.preds[r.best_epoch - 1], rtol=0, atol=1e-5)
    hist = pd.read_csv(r.path / 'history.csv')
    assert list(hist.epoch) == [1, 2, 3, 4] and {'train_loss', 'valid_loss', 'accuracy'} <= set(hist.columns)


def test_segmenter_learns(table, tmp_path):
    r = train_segmenter(table, 'unet_tiny', epochs=3, size=48, bs=8, lr=1e-2, out=tmp_path / 'seg', num_workers=0, progress=False)
    assert r.history.train_loss.iloc[-1] < r.history.train_loss.iloc[0]
    assert load_config(r.path)['classes'] == ['background', 'defect'] and 'dice' in r.history


def test_pretrained_lite0_fine_tunes(table, tmp_path):
    r = train_classifier(table, method='fastai', epochs=1, size=48, bs=16, out=tmp_path / 'lite0', num_workers=0, progress=False)
    cfg = load_config(r.path)
    assert cfg['pretrained'] and cfg['freeze_epochs'] == 1 and list(r.history.phase) == ['frozen', 'full']


def test_wrong_checkpoint_refused(table, tmp_path):
    r = train_classifier(table, 'small_cnn', epochs=1, size=48, bs=8, out=tmp_path / 'a', num_workers=0, progress=False)
    cfg = json.loads((r.path / 'config.json').read_text()); cfg['arch'] = 'unet_tiny'; cfg['task'] = 'segment'
    (r.path / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(RunError, match='does not fit unet_tiny'): load_model(r.path, 1)
    with pytest.raises(RunError, match='has epochs \\[1\\]'): load_model(r.path, 7)


def test_moved_run_folder_still_reads_its_split(table, tmp_path):
    "A run folder moved elsewhere reads its own split.csv; a run whose split file is gone everywhere is a clear error."
    import shutil
    from defect_nb.train import run_table
    r = train_classifier(table, 'small_cnn', epochs=1, size=48, bs=8, out=tmp_path / 'a', num_workers=0, progress=False)
    before = run_table(r.path, 'test')
    moved = shutil.move(str(r.path), str(tmp_path / 'elsewhere'))
    assert list(run_table(moved, 'test').image) == list(before.image)
    (tmp_path / 'elsewhere' / 'split.csv').unlink()
    with pytest.raises(RunError, match='split file of .* is gone'): run_table(moved, 'test')


def test_cli_train(cli, synth_small, tmp_path):
    args = ['train', '--data', synth_small, '--arch', 'small_cnn', '--epochs', '2', '--size', '48', '--bs', '8',
            '--out', 'runs/x', '--workers', '0']
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith('run runs/x: 2 epochs') and 'accuracy' in last
    assert sorted(p.name for p in (tmp_path / 'runs' / 'x').iterdir()) == \
        ['best.pth', 'config.json', 'curves.png', 'epoch_01.pth', 'epoch_02.pth', 'history.csv', 'optimizer.pth', 'split.csv']
    before = (tmp_path / 'runs' / 'x' / 'epoch_01.pth').read_bytes()
    r = cli(*args)
    assert r.returncode == 2 and 'already exists' in r.stderr and r.stderr.count('\n') == 1
    assert (tmp_path / 'runs' / 'x' / 'epoch_01.pth').read_bytes() == before


@pytest.mark.parametrize('args, words', [
    (['--arch', 'resnet_9000'], 'unknown architecture'),
    (['--arch', 'resnet18'], "offline choices: arch 'efficientnet_lite0'"),
    (['--arch', 'unet_tiny'], 'is a segment architecture'),
    (['--task', 'segment', '--loss', 'bce'], 'unknown segmentation loss'),
    (['--weights', 'missing.pth', '--arch', 'efficientnet_lite0'], 'does not exist'),
    (['--task', 'segment', '--arch', 'unet_tiny', '--encoder-frozen'], 'trained from random weights'),
    (['--task', 'segment', '--arch', 'dynamic_unet', '--encoder-frozen'], 'has no separate encoder'),
    (['--encoder-frozen'], "method='features'"),
])
def test_cli_train_bad_options(cli, synth_small, tmp_path, args, words):
    r = cli('train', '--data', synth_small, '--epochs', '1', '--size', '48', '--out', 'runs/y', *args, env={'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 2 and words in r.stderr and 'Traceback' not in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / 'runs' / 'y').exists()                      # refused before a run folder is made


def test_failed_setup_keeps_the_previous_run(table, tmp_path):
    "A run that fails while being set up (here a bad loss) puts back the run it was to overwrite and leaves no new folder behind."
    kw = dict(epochs=1, size=48, bs=8, num_workers=0, progress=False)
    r = train_classifier(table, 'small_cnn', out=tmp_path / 'a', **kw)
    before = {f.name: f.read_bytes() for f in r.path.iterdir()}
    with pytest.raises(Exception, match='loss'): train_classifier(table, 'small_cnn', loss='nope', out=tmp_path / 'a', overwrite=True, **kw)
    assert {f.name: f.read_bytes() for f in r.path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a']          # nothing set aside is left behind
    with pytest.raises(Exception, match='loss'): train_classifier(table, 'small_cnn', loss='nope', out=tmp_path / 'b', **kw)
    assert not (tmp_path / 'b').exists()
    r2 = train_classifier(table, 'small_cnn', out=tmp_path / 'a', overwrite=True, seed=1, **kw)   # a good overwrite replaces it
    assert (r2.path / 'epoch_01.pth').read_bytes() != before['epoch_01.pth'] and sorted(p.name for p in tmp_path.iterdir()) == ['a']

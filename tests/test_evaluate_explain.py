"Evaluation and Grad-CAM through the library and the CLI, on small synthetic runs."
import json
import numpy as np, pytest, torch
from defect_nb.synth import synthesize
from defect_nb.models import build_model, list_archs
from defect_nb.explain import explain_tensor, localisation, pointing_hit
from defect_nb.train import train_classifier


@pytest.fixture(scope='module')
def scratch_run(tmp_path_factory):
    "The from-scratch CNN taught scratches vs ok (the CAM test needs a model that has learnt what a scratch is)."
    d = tmp_path_factory.mktemp('scr')
    synthesize(d / 'syn', 120, 96, seed=3, classes=['scratches', 'ok'], progress=False)
    return train_classifier(d / 'syn', 'small_cnn', epochs=8, lr=1e-2, size=96, bs=16, out=d / 'run', num_workers=0, progress=False).path


@pytest.mark.parametrize('arch', ['efficientnet_lite0', 'resnet18', 'mobilenetv3_large_100', 'small_cnn', 'spatial_attention'])
def test_gradcam_every_classifier_without_a_layer_name(arch):
    model, _, _ = build_model(arch, 3, pretrained=False)
    heat, probs = explain_tensor(model, torch.randn(2, 3, 96, 96))
    assert heat.shape == (2, 96, 96) and np.isfinite(heat).all() and probs.shape == (2, 3)
    assert 0 <= heat.min() and heat.max() <= 1


@pytest.mark.parametrize('arch', ['unet_lite0', 'unet_tiny'])
def test_gradcam_segmenters(arch):
    model, _, _ = build_model(arch, 2, pretrained=False)
    heat, probs = explain_tensor(model, torch.randn(1, 3, 64, 64), task='segment')
    assert heat.shape == (1, 64, 64) and np.isfinite(heat).all() and probs.shape == (1, 2, 64, 64)


def test_hottest_region_lies_on_the_scratch(scratch_run):
    loc = localisation(scratch_run, progress=False)
    assert loc['n'] >= 5
    assert loc['pointing_game'] >= 0.6, loc
    assert loc['energy_in_mask'] > 2 * loc['uniform_baseline'], loc


def test_cli_evaluate(cli, scratch_run):
    r = cli('evaluate', scratch_run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'accuracy' in r.stdout and 'threshold' in r.stdout
    m = json.loads((scratch_run / 'metrics.json').read_text())
    assert m['n'] == sum(map(sum, m['confusion'])) and 0 <= m['threshold'] <= 1
    assert json.loads((scratch_run / 'threshold.json').read_text())['chosen_on'] == 'valid'
    r = cli('evaluate', scratch_run, '--json', '--split', 'valid')
    assert r.returncode == 0 and json.loads(r.stdout)['split'] == 'valid'


def test_cli_explain(cli, scratch_run, tmp_path):
    img = next((scratch_run.parent / 'syn' / 'images' / 'scratches').glob('*.png'))
    r = cli('explain', '--run', scratch_run, '--image', img, '--out', 'cam.png', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res['prediction'] in ('scratches', 'ok') and (tmp_path / 'cam.png').stat().st_size > 1000
    r = cli('explain', '--run', scratch_run, '--image', img, '--out', 'cam.png')
    assert r.returncode == 2 and 'exists' in r.stderr
    (tmp_path / 'bad.png').write_text('not an image')
    r = cli('explain', '--run', scratch_run, '--image', 'bad.png', '--out', 'x.png')
    assert r.returncode == 2 and "'bad.png' is not an image" in r.stderr and not (tmp_path / 'x.png').exists()

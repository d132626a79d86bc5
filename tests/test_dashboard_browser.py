"""The Voilà dashboard in a real browser: headless Chromium driven by Playwright, Voilà on 127.0.0.1.

Uploads a synthetic scratch, sees the prediction and the heatmap; moves the threshold and sees the mask change; selects
two epochs and sees two panels; uploads a text file named .png and sees the error while the page keeps working.
Screenshots go to test_artifacts/; with DEFECT_NB_DOC_IMAGES=nbs/images the README's and the docs' pictures are refreshed too.
"""
import os, shutil, socket, subprocess, time, json
from pathlib import Path
import cv2, pytest
from conftest import ROOT, needs_chromium

ARTIFACTS = ROOT / 'test_artifacts'
pytestmark = needs_chromium


def shot(page, name):
    "Screenshot to test_artifacts/, and to $DEFECT_NB_DOC_IMAGES when set (how the docs' pictures are made)."
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get('DEFECT_NB_DOC_IMAGES'):
        d = Path(os.environ['DEFECT_NB_DOC_IMAGES']); d.mkdir(parents=True, exist_ok=True); shutil.copy(ARTIFACTS / name, d / name)


def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    from defect_nb.synth import synthesize, synth_one
    from defect_nb.train import train_classifier, train_segmenter
    from defect_nb.evaluate import evaluate
    d = tmp_path_factory.mktemp('dash')
    synthesize(d / 'syn', 6, 96, seed=0, progress=False)
    rc = train_classifier(d / 'syn', method='finetune', epochs=1, size=64, bs=16, out=d / 'runs' / 'cls', num_workers=0, progress=False)
    evaluate(rc.path, progress=False)
    train_segmenter(d / 'syn', 'unet_tiny', epochs=2, size=64, lr=1e-2, out=d / 'runs' / 'seg', num_workers=0, progress=False)
    cv2.imwrite(str(d / 'scratch.png'), synth_one('scratches', 96, 5)[0])
    (d / 'notes.png').write_text('this is a text file, not an image')
    return d


@pytest.fixture(scope='module')
def voila(runs):
    from defect_nb.dashboard import dashboard_notebook, voila_command
    port = free_port()
    nb = dashboard_notebook(runs / 'runs', runs / 'app' / 'dashboard.ipynb')
    log = open(runs / 'voila.log', 'w')
    p = subprocess.Popen(voila_command(nb, port), stdout=log, stderr=subprocess.STDOUT, cwd=runs)
    url = f'http://127.0.0.1:{port}/'
    import httpx
    for _ in range(240):
        try:
            if httpx.get(url + 'api', timeout=1).status_code < 500: break
        except httpx.HTTPError: time.sleep(0.25)
    else:
        p.kill(); pytest.fail('voila did not start: ' + (runs / 'voila.log').read_text()[-2000:])
    yield url
    p.terminate(); p.wait(15)


@pytest.fixture(scope='module')
def page(voila, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    pg = browser.new_page(viewport={'width': 1400, 'height': 1000})
    pg.goto(voila, timeout=180_000)
    pg.wait_for_selector('text=defect_nb inspection', timeout=180_000)
    yield pg
    pg.close()


def select_run(page, name):
    page.locator('.widget-dropdown:has-text("Run") select').select_option(label=name)
    page.wait_for_selector(f'text=run {name}', timeout=60_000)


def upload(page, path):
    with page.expect_file_chooser() as fc: page.locator('.widget-upload').click()
    fc.value.set_files(str(path))


def test_upload_predict_and_heatmap(page, runs):
    select_run(page, 'cls')
    t = time.perf_counter()
    upload(page, runs / 'scratch.png')
    page.wait_for_selector('.dnb-prediction', timeout=60_000)
    latency = time.perf_counter() - t
    text = page.locator('.dnb-prediction').first.inner_text()
    assert any(c in text for c in ('scratches', 'ok', 'crazing', 'patches', 'inclusion', 'pitted_surface', 'rolled-in_scale'))
    assert page.locator('.dnb-panel img').count() >= 3                 # input, Grad-CAM overlay, probability bars
    shot(page, 'dashboard_classifier.png')
    (ARTIFACTS / 'dashboard_latency.json').write_text(json.dumps(dict(upload_to_result_s=round(latency, 2))))
    print(f"upload to result shown: {latency:.2f} s")


def test_two_epochs_two_panels(page, runs):
    select_run(page, 'seg')
    upload(page, runs / 'scratch.png')
    page.wait_for_selector('.dnb-prediction', timeout=60_000)
    handles = page.locator('.widget-hslider:has-text("Epochs") .noUi-handle')
    handles.nth(0).focus(); page.keyboard.press('Home')
    handles.nth(1).focus(); page.keyboard.press('End')
    page.wait_for_function("document.querySelectorAll('.dnb-panel').length === 2", timeout=60_000)
    assert page.locator('.dnb-panel').count() == 2
    shot(page, 'dashboard_epochs.png')


def test_threshold_changes_mask(page, runs):
    before = page.locator('.dnb-prediction').first.inner_text()
    h = page.locator('.widget-hslider:has-text("Threshold") .noUi-handle').first
    h.focus(); page.keyboard.press('Home')                            # threshold 0: every pixel is defect
    page.wait_for_function("(b) => document.querySelector('.dnb-prediction').innerText !== b", arg=before, timeout=60_000)
    after = page.locator('.dnb-prediction').first.inner_text()
    assert after != before and 'defect area' in after
    shot(page, 'dashboard_threshold.png')


def test_bad_upload_shows_message_and_page_keeps_working(page, runs):
    upload(page, runs / 'notes.png')
    page.wait_for_selector('.dnb-error', timeout=60_000)
    assert 'is not an image' in page.locator('.dnb-error').inner_text()
    shot(page, 'dashboard_bad_upload.png')
    select_run(page, 'cls')
    upload(page, runs / 'scratch.png')
    page.wait_for_selector('.dnb-prediction', timeout=60_000)
    assert page.locator('.dnb-panel').count() >= 1

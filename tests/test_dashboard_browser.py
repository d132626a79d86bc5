"""The Voilà dashboard in a real browser: headless Chromium driven by Playwright, Voilà on 127.0.0.1.

Driven as a user would: uploads a synthetic scratch and sees the classifier's verdict and heatmap; moves the threshold
to 0 and to 1 and sees the verdict flip, with the number that decides; reads the Training tab; picks a test image from
the Sample list and sees the segmenter's mask against the truth, with the run's minimum area; uses *Compare with* and
sees two panels; selects two epochs on the slider and sees two panels; moves the threshold and sees the mask change;
uploads a text file named .png and sees the error while the page keeps working.
Screenshots go to test_artifacts/; with DEFECT_NB_DOC_IMAGES=nbs/images the README's and the docs' pictures are refreshed too.
"""
import os, re, shutil, socket, subprocess, time, json
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
    rs = train_segmenter(d / 'syn', 'unet_tiny', epochs=2, size=64, lr=1e-2, out=d / 'runs' / 'seg', num_workers=0, progress=False)
    evaluate(rs.path, progress=False)                                    # a threshold and a minimum area chosen on valid
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


def dropdown(page, label):
    "The <select> of the dropdown whose label is exactly `label`."
    return page.locator(f'.widget-dropdown:has(label:text-is("{label}")) select')


def select_run(page, name):
    "Choose run `name` and wait until the dashboard has loaded it (via another run when it is already chosen)."
    sel = dropdown(page, 'Run')
    if sel.evaluate('s => s.options[s.selectedIndex].text') == name:     # choosing it again would change nothing
        other = next(o for o in sel.locator('option').all_inner_texts() if o != name)
        sel.select_option(label=other); page.wait_for_selector(f'text=run {other}', timeout=60_000)
    sel.select_option(label=name)
    page.wait_for_selector(f'text=run {name}', timeout=60_000)


def upload(page, path):
    with page.expect_file_chooser() as fc: page.locator('.widget-upload').click()
    fc.value.set_files(str(path))


def wait_panels(page, n, title=None):
    "Wait for exactly `n` result panels (the first titled with `title`, when given)."
    page.wait_for_function("([n, t]) => { const p = document.querySelectorAll('.dnb-panel');"
                           " return p.length === n && (!t || p[0].innerText.includes(t)); }", arg=[n, title], timeout=60_000)


def verdict(page, i=0): return page.locator('.dnb-prediction').nth(i).inner_text().strip()


def move_threshold(page, key, text):
    "Press Home (threshold 0) or End (threshold 1) on the threshold slider and wait until the first panel reads `text`."
    h = page.locator('.widget-hslider:has-text("Threshold") .noUi-handle').first
    h.focus(); page.keyboard.press(key)
    page.wait_for_function("(t) => { const p = document.querySelector('.dnb-panel'); return p && p.innerText.includes(t); }",
                           arg=text, timeout=60_000)


def test_upload_predict_and_heatmap(page, runs):
    select_run(page, 'cls')
    t = time.perf_counter()
    upload(page, runs / 'scratch.png')
    wait_panels(page, 1, 'scratch.png')
    latency = time.perf_counter() - t
    text = verdict(page)
    assert any(text.startswith(c + ' ') for c in ('scratches', 'ok', 'crazing', 'patches', 'inclusion', 'pitted_surface', 'rolled-in_scale')), text
    # the top class and its probability, then the number that decides against the threshold, then the verdict
    assert re.fullmatch(r'\S+ \d+\.\d % · P\(defect\) \d+\.\d+ % [≥<] threshold \d\.\d\d+ → (DEFECTIVE|OK)', text), text
    assert page.locator('.dnb-panel img').count() >= 3                 # input, Grad-CAM overlay, probability bars
    shot(page, 'dashboard_classifier.png')
    (ARTIFACTS / 'dashboard_latency.json').write_text(json.dumps(dict(upload_to_result_s=round(latency, 2))))
    print(f"upload to result shown: {latency:.2f} s")


def test_threshold_flips_the_classifier_verdict(page, runs):
    move_threshold(page, 'Home', 'threshold 0.00')                    # threshold 0: every image is defective
    low = verdict(page)
    move_threshold(page, 'End', 'threshold 1.00')                     # threshold 1: none is (P(ok) is never exactly 0)
    high = verdict(page)
    assert low.endswith('≥ threshold 0.00 → DEFECTIVE') and high.endswith('< threshold 1.00 → OK'), (low, high)
    assert low.split(' · ')[0] == high.split(' · ')[0]                # the model says the same; only the verdict moved
    assert 'P(defect) = 1 − P(ok)' in page.locator('.dnb-why').first.inner_text()
    shot(page, 'dashboard_classifier_threshold.png')


def test_training_tab_says_the_threshold_in_words(page, runs):
    thr = json.loads((runs / 'runs' / 'cls' / 'threshold.json').read_text())['threshold']
    metrics = json.loads((runs / 'runs' / 'cls' / 'metrics.json').read_text())
    page.locator('.lm-TabBar-tab, .p-TabBar-tab').filter(has_text='Training').first.click()
    try:
        page.wait_for_selector('.dnb-threshold-meaning', state='visible', timeout=30_000)
        words = page.locator('.dnb-threshold-meaning').inner_text()
        assert words.startswith('An image is rejected as defective when P(defect) = 1 − P(ok) is at or above'), words
        assert f"{thr:.2f}" in words and f"caught {100 * metrics['test_recall']:.1f} % of the defective images" in words, words
        table = page.locator('table.dnb-metrics').inner_text()
        assert re.search(rf"accuracy\s+{100 * metrics['accuracy']:.1f} %", table), table
        assert 'confusion' not in table and 'report' not in table
        shot(page, 'dashboard_training.png')
    finally:
        page.locator('.lm-TabBar-tab, .p-TabBar-tab').filter(has_text='Inspect').first.click()


def test_sample_from_the_list_shows_mask_and_truth(page, runs):
    op = json.loads((runs / 'runs' / 'seg' / 'threshold.json').read_text())
    select_run(page, 'seg')
    sample = dropdown(page, 'Sample')
    names = sample.locator('option').all_inner_texts()
    assert names[0].startswith('(choose') and len(names) > 1, names
    name = next(n for n in names[1:] if not n.startswith('ok'))        # a defective image, so there is a true mask
    sample.select_option(label=name)
    wait_panels(page, 1, name)
    page.wait_for_function("() => { const t = document.querySelector('.dnb-truth'); return t && t.innerText.includes('Dice'); }", timeout=60_000)
    text = verdict(page)
    assert re.fullmatch(rf"defect area [\d,]+ px [≥<] minimum area {op['min_area']:,} px → (DEFECTIVE|OK)", text), text
    legend = page.locator('.dnb-legend').first.inner_text()
    assert 'predicted defect' in legend and 'true defect' in legend, legend
    rule = page.locator('.dnb-rule').first.inner_text()
    assert f"minimum defect area {op['min_area']:,} px" in rule and 'pixel threshold' in rule, rule
    shot(page, 'dashboard_segmenter.png')


def test_compare_control_puts_a_second_epoch_beside_the_best(page, runs):
    select_run(page, 'seg')
    wait_panels(page, 1)
    compare = dropdown(page, 'Compare with')
    labels = compare.locator('option').all_inner_texts()
    assert labels[0] == 'none' and sum('(best)' in l for l in labels) == 1, labels
    best = next(l for l in labels if '(best)' in l)
    other = next(l for l in labels[1:] if '(best)' not in l)
    compare.select_option(label=other)
    wait_panels(page, 2)
    titles = page.locator('.dnb-panel .dnb-title').all_inner_texts()
    nbsp = lambda t: t.replace('\xa0', ' ')                           # ipywidgets writes option labels with no-break spaces
    assert titles == [nbsp(best), nbsp(other)], (titles, labels)      # the best first, the one compared with beside it
    assert page.locator('.dnb-prediction').count() == 2
    shot(page, 'dashboard_compare.png')
    compare.select_option(label='none')
    wait_panels(page, 1)


def test_two_epochs_two_panels(page, runs):
    select_run(page, 'seg')
    upload(page, runs / 'scratch.png')
    wait_panels(page, 1, 'scratch.png')
    handles = page.locator('.widget-hslider:has-text("Epochs") .noUi-handle')
    handles.nth(0).focus(); page.keyboard.press('Home')
    handles.nth(1).focus(); page.keyboard.press('End')
    page.wait_for_function("document.querySelectorAll('.dnb-panel').length === 2", timeout=60_000)
    assert page.locator('.dnb-panel').count() == 2
    shot(page, 'dashboard_epochs.png')


def test_threshold_changes_mask(page, runs):
    move_threshold(page, 'End', 'P(defect) ≥ 1.00 are defect')         # threshold 1: hardly a pixel is defect
    high = verdict(page)
    move_threshold(page, 'Home', 'P(defect) ≥ 0.00 are defect')        # threshold 0: every pixel is
    low = verdict(page)
    assert low != high and low.startswith(f"defect area {96 * 96:,} px ≥ minimum area"), (low, high)
    shot(page, 'dashboard_threshold.png')


def test_bad_upload_shows_message_and_page_keeps_working(page, runs):
    upload(page, runs / 'notes.png')
    page.wait_for_selector('.dnb-error', timeout=60_000)
    assert 'is not an image' in page.locator('.dnb-error').inner_text()
    shot(page, 'dashboard_bad_upload.png')
    select_run(page, 'cls')
    wait_panels(page, 1)
    upload(page, runs / 'scratch.png')
    wait_panels(page, 1, 'scratch.png')
    assert page.locator('.dnb-panel').count() >= 1 and 'P(defect)' in verdict(page)


# The README's and the docs' pictures: the dashboard on the demo's own trained models (not the tiny test models above).
# Run after `defect-nb demo --out demo`:  DEFECT_NB_DEMO=demo DEFECT_NB_DOC_IMAGES=nbs/images pytest tests/test_dashboard_browser.py -k demo
DEMO = os.environ.get('DEFECT_NB_DEMO')


@pytest.mark.skipif(not DEMO, reason='set DEFECT_NB_DEMO to a `defect-nb demo` output folder to take the README pictures on its models')
def test_demo_models_pictures(browser, tmp_path):
    from defect_nb.dashboard import dashboard_notebook, voila_command
    demo = Path(DEMO).resolve(); port = free_port()
    nb = dashboard_notebook(demo / 'runs', tmp_path / 'dashboard.ipynb', demo / 'bundles')
    log = open(tmp_path / 'voila.log', 'w')
    p = subprocess.Popen(voila_command(nb, port), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url = f'http://127.0.0.1:{port}/'
        import httpx
        for _ in range(240):
            try:
                if httpx.get(url + 'api', timeout=1).status_code < 500: break
            except httpx.HTTPError: time.sleep(0.25)
        pg = browser.new_page(viewport={'width': 1400, 'height': 1000})
        pg.goto(url, timeout=180_000); pg.wait_for_selector('text=defect_nb inspection', timeout=180_000)
        pg.wait_for_selector('text=run classifier', timeout=120_000)           # the dashboard opens on the classifier
        names = dropdown(pg, 'Sample').locator('option').all_inner_texts()
        name = next(n for n in names if n.startswith('inclusion'))            # a small defect, the hardest class to see
        dropdown(pg, 'Sample').select_option(label=name)
        wait_panels(pg, 1, name)
        text = verdict(pg)
        assert re.fullmatch(r'\S+ \d+\.\d % · P\(defect\) \d+\.\d+ % [≥<] threshold \d\.\d\d+ → (DEFECTIVE|OK)', text), text
        shot(pg, 'demo_classifier.png')
        select_run(pg, 'segmenter')
        names = dropdown(pg, 'Sample').locator('option').all_inner_texts()
        name = next(n for n in names if n.startswith('scratches'))
        dropdown(pg, 'Sample').select_option(label=name)
        wait_panels(pg, 1, name)
        assert 'minimum' in pg.locator('.dnb-panel').first.inner_text()
        shot(pg, 'demo_segmenter.png')
        pg.close()
    finally:
        p.terminate(); p.wait(15)

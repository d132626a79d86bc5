"The load benchmark, at a reduced count: `bench/load_test.py` against a real server, its checks and figures asserted here."
import json, subprocess, sys
from conftest import ROOT

ARTIFACTS = ROOT / 'test_artifacts'


def test_load_mix_of_good_and_hostile(bundle, tmp_path):
    """300 requests at concurrency 16 after a 300-request warm-up, a fifth of them hostile files: zero 5xx, every good
    image the local Predictor's class, every hostile file a 4xx, resident memory growing under 10%."""
    cmd = [sys.executable, str(ROOT / 'bench' / 'load_test.py'), '--model', str(bundle), '--requests', '300', '--concurrency', '16',
           '--out', str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    print(p.stdout[-3000:])
    r = json.loads((tmp_path / 'load.json').read_text())
    ARTIFACTS.mkdir(exist_ok=True); (ARTIFACTS / 'load.md').write_text((tmp_path / 'load.md').read_text())
    assert r['requests'] == 300 and sum(r['status'].values()) == 300 + r['warmup'] == r['good'] + r['bad'] and 0 < r['bad'] < r['good']
    assert r['server_5xx'] == 0 and r['connection_errors'] == 0, r['status']
    assert r['good_correct'] == r['good'] and r['bad_4xx'] == r['bad'] and r['max_prob_diff'] < 1e-4, r['failures']
    # measured on the 2-core dev machine: +1.9% at 2,000 requests, +3.8% at 6,000 (a plateau, not a leak); 10% leaves room for noise
    assert r['rss_start_mb'] and r['rss_growth_pct'] < 10, r
    assert r['passed'] and p.returncode == 0, (r['problems'], p.stderr[-2000:])

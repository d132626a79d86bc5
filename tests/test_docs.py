"The docs build without Quarto: nbdev's notebook processing (what `nbdev-docs` feeds Quarto) runs on every page."
import subprocess, sys
from conftest import ROOT


def test_nbdev_doc_processing():
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from nbdev.serve import proc_nbs\nproc_nbs(force=True)\n")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Found cells containing imports and other code' not in r.stderr, r.stderr[-3000:]
    pages = sorted(p.name for p in (ROOT / '_proc').glob('*.ipynb'))
    assert {'index.ipynb', '00_core.ipynb', '10_dashboard.ipynb', '90_cli.ipynb'} <= set(pages), pages
    assert (ROOT / '_proc' / 'benchmarks.qmd').exists() and (ROOT / '_proc' / '_quarto.yml').exists()

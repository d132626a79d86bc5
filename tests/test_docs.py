"""The docs build without Quarto: nbdev's notebook processing (what `nbdev-docs` feeds Quarto) runs on every page, each
processed page is rendered to HTML by nbconvert from its stored outputs (nothing is executed), and headless Chromium
opens it: every page has its title and no error output, every tutorial shows at least one figure. The site's sidebar
(nbs/sidebar.yml) lists every page, and the Quarto settings agree with what nbdev 3 writes.
"""
import html, json, re, subprocess, sys
import pytest, yaml
from conftest import ROOT, needs_chromium

NBS, PROC = ROOT / 'nbs', ROOT / '_proc'


def _pages(folder):
    "Notebooks nbdev publishes from `folder` (it skips names starting with '_' or '.'), as paths relative to nbs/."
    return sorted(p.relative_to(NBS).as_posix() for p in folder.glob('*.ipynb') if not p.name.startswith(('_', '.')))

TUTORIALS = _pages(NBS / 'tutorials')
API = [p for p in _pages(NBS) if re.match(r'\d\d_', p)]
PAGES = ['index.ipynb', *TUTORIALS, *API]


@pytest.fixture(scope='session')
def proc():
    "Run nbdev's doc processing once (into _proc/, as nbdev-docs does); the CompletedProcess."
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from nbdev.serve import proc_nbs\nproc_nbs(force=True)\n")
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_nbdev_doc_processing(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Found cells containing imports and other code' not in proc.stderr, proc.stderr[-3000:]
    pages = sorted(p.name for p in PROC.glob('*.ipynb'))
    assert {'index.ipynb', '00_core.ipynb', '10_dashboard.ipynb', '90_cli.ipynb'} <= set(pages), pages
    assert (PROC / 'benchmarks.qmd').exists() and (PROC / '_quarto.yml').exists() and (PROC / 'sidebar.yml').exists()
    for p in TUTORIALS: assert (PROC / p).exists(), p


# --- the site's configuration ----------------------------------------------------------------------------------------

def sidebar_hrefs():
    "Every page the sidebar links to, in order, as paths relative to nbs/."
    def walk(items):
        for o in items:
            if isinstance(o, str): yield o
            elif 'contents' in o: yield from walk(o['contents'])
            else: yield o['href']
    return list(walk(yaml.safe_load((NBS / 'sidebar.yml').read_text())['website']['sidebar']['contents']))


def test_sidebar_lists_every_page():
    hrefs = sidebar_hrefs()
    assert len(hrefs) == len(set(hrefs)), hrefs
    assert hrefs[0] == 'index.ipynb' and hrefs[-1] == 'benchmarks.qmd', hrefs
    assert [h for h in hrefs if re.match(r'\d\d_', h)] == API           # one API page per numbered notebook, in order
    missing = [p for p in PAGES + ['benchmarks.qmd'] if p not in hrefs]
    assert not missing, f"pages not in nbs/sidebar.yml: {missing}"
    absent = [h for h in hrefs if not h.startswith('tutorials/') and not (NBS / h).exists()]
    assert not absent, f"nbs/sidebar.yml links to missing files: {absent}"


def test_quarto_config_matches_nbdev():
    "nbdev-docs regenerates nbdev.yml from pyproject.toml and, unless custom_sidebar is set, overwrites sidebar.yml."
    from nbdev.config import get_config
    from nbdev.quarto import _nbdev_yml
    cfg = get_config(ROOT)
    assert cfg.custom_sidebar is True, "pyproject.toml [tool.nbdev] needs custom_sidebar = true, or nbdev-docs overwrites nbs/sidebar.yml"
    vals = {k: cfg[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    assert (NBS / 'nbdev.yml').read_text() == _nbdev_yml.format(**vals, doc_path=cfg.doc_path.name), \
        "nbs/nbdev.yml differs from what nbdev-docs writes from pyproject.toml: run `python -c 'from nbdev.quarto import refresh_quarto_yml as f; f()'`"
    q = yaml.safe_load((NBS / '_quarto.yml').read_text())
    assert q['project']['type'] == 'website'
    assert {'nbdev.yml', 'sidebar.yml'} <= set(q['metadata-files'])
    assert (NBS / q['format']['html']['css']).exists()


def test_five_tutorials():
    "nbs/tutorials holds the five tutorials the sidebar links to."
    listed = [h for h in sidebar_hrefs() if h.startswith('tutorials/')]
    assert len(TUTORIALS) >= 5, f"nbs/tutorials has {len(TUTORIALS)} notebooks: {TUTORIALS}"
    assert not [h for h in listed if h not in TUTORIALS], f"sidebar links to missing tutorials: {set(listed) - set(TUTORIALS)}"


# --- every page, rendered and opened in a browser --------------------------------------------------------------------

def _like_quarto(nb):
    """Prepare a processed notebook for nbconvert: nbdev's YAML front matter (a raw cell) becomes the title block Quarto
    makes of it (h1.title, p.description); Quarto's `#| include/echo/output: false` are applied; proc_nbs's execution
    timings, which nbformat's schema rejects, go. (Other Quarto syntax, such as `{.class}` attributes, stays as text.)"""
    import nbformat
    def opt(c, k): return re.search(rf'^#\|\s*{k}:\s*false\s*$', c.source, re.M) is not None
    nb.cells = [c for c in nb.cells if not (c.cell_type == 'code' and opt(c, 'include'))]
    for c in nb.cells:
        c.metadata.pop('execution', None)
        if c.cell_type != 'code': continue
        if opt(c, 'echo'): c.metadata.setdefault('tags', []).append('remove_input')   # see `rendered`
        if opt(c, 'output'): c.outputs = []
    if not nb.cells or nb.cells[0].cell_type != 'raw' or not nb.cells[0].source.startswith('---'): return nb
    fm = yaml.safe_load(nb.cells[0].source.strip().strip('-')) or {}
    block = [f'<h1 class="title">{html.escape(str(fm["title"]))}</h1>' if fm.get('title') else '',
             f'<p class="description">{html.escape(str(fm["description"]))}</p>' if fm.get('description') else '']
    nb.cells[0] = nbformat.v4.new_markdown_cell('\n'.join(block))
    return nb


@pytest.fixture(scope='session')
def rendered(proc, tmp_path_factory):
    "`rendered(page)`: the processed page rendered to HTML by nbconvert (once per session), as a path."
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    assert proc.returncode == 0, f"nbdev doc processing failed: {proc.stderr[-2000:]}"
    exporter = HTMLExporter(config=Config(TagRemovePreprocessor=dict(enabled=True, remove_input_tags={'remove_input'})))
    out, cache = tmp_path_factory.mktemp('html'), {}
    def render(page):
        if page not in cache:
            src = PROC / page
            body, _ = exporter.from_notebook_node(_like_quarto(nbformat.read(src, as_version=4)))
            # relative links and images resolve against the processed page's folder, as they do for Quarto
            body = body.replace('<head>', f'<head><base href="{src.parent.as_uri()}/">', 1)
            dest = out / page.replace('/', '__').replace('.ipynb', '.html')
            dest.write_text(body, encoding='utf-8')
            cache[page] = dest
        return cache[page]
    return render


JS_FACTS = """() => ({
  titles: [...document.querySelectorAll('h1.title')].map(h => h.innerText.trim()),
  images: [...document.images].map(i => ({src: i.src.slice(0, 60), local: !/^https?:/.test(i.src), w: i.naturalWidth})),
  tracebacks: [...document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
                .map(e => e.innerText).filter(t => t.includes('Traceback')).map(t => t.slice(0, 500)),
})"""


@needs_chromium
@pytest.mark.parametrize('page', PAGES)
def test_page(page, rendered, browser):
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in json.loads((PROC / page).read_text())['cells']
              for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert not errors, f"{page} has error outputs: {errors}"
    pg = browser.new_page()
    try:
        pg.route(re.compile(r'^https?://'), lambda route: route.abort())   # offline: CDN scripts (require.js, MathJax) fail fast
        pg.goto(rendered(page).as_uri(), wait_until='load', timeout=60_000)
        facts = pg.evaluate(JS_FACTS)
    finally: pg.close()
    assert len(facts['titles']) == 1 and facts['titles'][0], f"{page}: no h1 title (first cell `# Title` + `> summary`): {facts['titles']}"
    assert not facts['tracebacks'], f"{page} shows a traceback: {facts['tracebacks']}"
    broken = [i['src'] for i in facts['images'] if i['local'] and i['w'] == 0]
    assert not broken, f"{page}: images that did not load: {broken}"
    if page.startswith('tutorials/'):
        assert any(i['w'] > 0 for i in facts['images']), f"{page}: a tutorial needs at least one figure"

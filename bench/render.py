"""Copy the benchmark tables from bench/results/*.md into README.md and nbs/benchmarks.qmd between their markers.

    python bench/render.py

A block `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->` receives bench/results/NAME.md, so the published figures are
always the measured ones, never typed by hand.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(path: Path) -> bool:
    text = path.read_text()
    def sub(m):
        src = ROOT / 'bench' / 'results' / f'{m.group(1)}.md'
        body = src.read_text().strip() if src.exists() else f'_No results yet: run the benchmark (bench/results/{m.group(1)}.md is missing)._'
        body = re.sub(r'^# (.+)$', r'**\1**', body, flags=re.M)      # a results file's title, inside the page's own sections
        return f'<!-- bench:{m.group(1)} -->\n{body}\n<!-- /bench:{m.group(1)} -->'
    new = re.sub(r'<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->', sub, text, flags=re.S)
    if new != text: path.write_text(new)
    return new != text


if __name__ == '__main__':
    for p in [ROOT / 'README.md', ROOT / 'nbs' / 'benchmarks.qmd']:
        if p.exists(): print(p.name, 'updated' if render(p) else 'unchanged')

"""Convert notebooks to and from a plain-text 'percent' form, for editing notebooks as text.

    python tools/nbtext.py to-nb  draft.py nbs/10_geometry.ipynb   # text -> notebook
    python tools/nbtext.py to-txt nbs/10_geometry.ipynb draft.py   # notebook -> text

Cells start with a line `# %%` (code) or `# %% [md]` (markdown, whose lines are written as `# text`).
Outputs are not kept: run `nbdev-clean` afterwards as usual.
"""
import hashlib, json, sys
from pathlib import Path

def text_to_cells(text):
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        lines = buf[:]
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind == 'markdown': lines = [l[2:] if l.startswith('# ') else l.lstrip('#') for l in lines]
        src = '\n'.join(lines)
        cell = dict(cell_type=kind, metadata={}, source=src)
        if kind == 'code': cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    for line in text.splitlines():
        s = line.strip()
        if s.startswith('# %%'):
            flush(); buf = []
            kind = 'markdown' if '[md]' in s or '[markdown]' in s else 'code'
        else: buf.append(line)
    flush()
    return cells

def to_nb(src, dst):
    cells = text_to_cells(Path(src).read_text())
    # stable cell ids (from the notebook's name, the cell's position and kind) keep re-exports free of churn
    for i, c in enumerate(cells):
        c['id'] = hashlib.sha1(f"{Path(dst).name}:{i}:{c['cell_type']}".encode()).hexdigest()[:8]
    nb = dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)
    Path(dst).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

def to_txt(src, dst):
    nb = json.loads(Path(src).read_text())
    out = []
    for c in nb['cells']:
        s = c['source'] if isinstance(c['source'], str) else ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            out.append('# %% [md]'); out += ['# ' + l if l else '#' for l in s.splitlines()]
        else:
            out.append('# %%'); out += s.splitlines()
        out.append('')
    Path(dst).write_text('\n'.join(out))

if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] not in ('to-nb', 'to-txt'): sys.exit(__doc__)
    cmd, a, b = sys.argv[1:4]
    {'to-nb': to_nb, 'to-txt': to_txt}[cmd](a, b)

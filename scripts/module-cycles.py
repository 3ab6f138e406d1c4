import os, re, sys, itertools
root = sys.argv[1]
# module id = first path component under src (children grouped), plus ops/<name> as separate
def modid(rel):
    parts = rel[:-3].split('/')
    if parts[0] == 'ops' and len(parts) > 1:
        return 'ops::' + parts[1]
    if parts[0] in ('lib', 'main'):
        return None
    return parts[0]
edges = {}
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        rel = os.path.relpath(os.path.join(dp, f), root)
        m = modid(rel)
        if m is None: continue
        text = open(os.path.join(dp, f)).read()
        text = text.split('#[cfg(test)]\nmod tests')[0]
        refs = set()
        for r in re.findall(r'crate::([a-z_]+)(?:::([a-z_]+))?', text):
            top = r[0]
            if top == 'ops' and r[1]: refs.add('ops::' + r[1])
            else: refs.add(top)
        # use crate::{a, b::c}
        for block in re.findall(r'use crate::\{([^}]*)\}', text, re.S):
            for item in re.findall(r'(?:^|,)\s*([a-z_]+)', block):
                refs.add(item)
        refs.discard(m)
        if m.startswith('ops::'): refs.discard('ops')
        edges.setdefault(m, set()).update(r for r in refs if r not in ('error',))
mods = set(edges)
found = False
for a, b in itertools.combinations(sorted(mods), 2):
    if b in edges.get(a, ()) and a in edges.get(b, ()):
        print(f"cycle: {a} <-> {b}"); found = True
if not found: print("no two modules import each other")

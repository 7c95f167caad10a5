"""Print the mutation score per module from `mutmut results --all true` (read on stdin).

A mutant counts as killed when a test failed or timed out under it (an endless loop is caught);
`no tests`: no offline test runs the mutated function at all.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

COLUMNS = ("killed", "timeout", "survived", "no tests", "other")


def main() -> None:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in sys.stdin:
        m = re.match(r"\s*([\w.]+?)\.x[ΔǁÑ_\w]*?__mutmut_\d+: (.+)$", line.rstrip())
        if not m:
            continue
        status = m[2] if m[2] in COLUMNS else "other"
        by_module[m[1]][status] += 1
    print(f"{'module':32} {'score':>7} " + " ".join(f"{c:>9}" for c in COLUMNS) + f" {'total':>6}")
    for module, c in sorted(by_module.items()):
        total = sum(c.values())
        score = (c["killed"] + c["timeout"]) / total if total else 0.0
        print(f"{module:32} {score:7.1%} " + " ".join(f"{c[k]:>9}" for k in COLUMNS) + f" {total:>6}")


if __name__ == "__main__":
    main()

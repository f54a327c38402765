"""The attack suite as a table: attacks tried, and how many ended in a crash, a hang, an escape from the source or
out folder, a silent loss (a file the report does not account for) or bad data accepted as a sample.

    PYTHONPATH=. python bench/attack_suite.py [--only NAME ...] [--fast] [--verbose]

Every attack runs through the real CLI on generated inputs in a fresh temporary folder (tests/attack_cases.py);
the goal is 0 in every column but "tried". The same attacks run as tests in tests/test_attacks.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.attack_cases import ATTACKS  # noqa: E402
from tests.attack_kit import COLUMNS, TOTALS, Env, summarise  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="attack names to run")
    parser.add_argument("--fast", action="store_true", help="skip the slow (subprocess) attacks")
    parser.add_argument("--verbose", action="store_true", help="print every finding")
    args = parser.parse_args()
    chosen = [a for a in ATTACKS if (args.only is None or a.name in args.only) and not (args.fast and a.slow)]
    results, kinds = {}, {}
    start = time.perf_counter()
    for attack in chosen:
        with tempfile.TemporaryDirectory(prefix="medmat-attack-") as tmp:
            try:
                findings = attack.run(Env(Path(tmp)))
            except Exception as exc:  # the attack's own setup failing is a crash of the suite, shown as such
                findings = [("crash", f"attack raised {type(exc).__name__}: {exc}")]
        results[attack.name], kinds[attack.name] = findings, attack.kind
        mark = "ok" if not findings else ", ".join(sorted({c for c, _ in findings}))
        print(f"{attack.kind:12s} {attack.name:40s} {mark}", flush=True)
        if findings and args.verbose:
            for column, message in findings:
                print(f"    {column}: {message}")
    elapsed = time.perf_counter() - start
    print()
    header = ["class", "tried", *COLUMNS]
    print(" | ".join(f"{h:>11s}" for h in header))
    for kind in sorted(set(kinds.values())) + ["all"]:
        subset = {n: f for n, f in results.items() if kind == "all" or kinds[n] == kind}
        row = summarise(subset)
        print(" | ".join([f"{kind:>11s}", *(f"{row[c]:>11d}" for c in ("tried", *COLUMNS))]))
    t = TOTALS
    print(f"\nfiles on disk, summed over every build checked: {t['on disk']:,} = written {t['written']:,} + "
          f"quarantined {t['quarantined']:,} + excluded {t['excluded']:,} + beside layout.root {t['beside root']:,}"
          f" (unaccounted: {t['unaccounted']:,})")
    print(f"{len(results)} attacks in {elapsed:.1f} s")
    return 0 if all(not f for f in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

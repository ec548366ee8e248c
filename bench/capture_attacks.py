"""Write paths that slip past trigger-based capture while ``ferry pg follow`` runs, one scenario each.

Each scenario: a fresh source (owned by an app role, as on Heroku, which is also the role ferry uses)
and target; ``ferry pg capture install`` and ``ferry pg copy --follow``; the attack (by the app role,
which owns its tables, or by a superuser where that is what it takes); the follower catches up; the
fence, the drain and the syncs (the adapter in ``bench/chaos/ferry_driver.py``); then this harness's
comparator.
The verdict says whether ferry noticed (the follow stopped, the fence or drain refused, or ferry's own
freeze proof, where this ferry has one, named a difference) and whether the target differs:
``MISSED`` is a difference nobody reported.

    .venv/bin/python bench/capture_chaos.py --attacks [--ferry-root PATH] [--bindir PATH]
    .venv/bin/python bench/capture_attacks.py --only table-rebuild,prepared-transaction

The scenarios are in ``bench/chaos/attack_cases.py``, the runner in ``bench/chaos/attacks.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos.attacks import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

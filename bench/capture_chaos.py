"""Chaos test of PostgreSQL change capture: random writers, a follower killed at random, the fence, an exact compare.

For each seed: a fresh source database (owned by an app role, as on Heroku; ferry and the writers
use that role) and target; a schema shaped like a real app's: uuid, text, composite and
unique-index keys; foreign keys with ON DELETE/UPDATE CASCADE and SET NULL; a partitioned table
whose rows move between partitions; unique indexes on ``lower(email)``, ``WHERE NOT deleted``,
``NULLS NOT DISTINCT`` (15+), ``INCLUDE (...)`` and under a case-insensitive ICU collation;
exclusion constraints on columns and on ``tstzrange(starts, ends)``; a key holding a daterange
written under ``DateStyle 'SQL, DMY'``; tables without a key; sequences, identity and generated
columns, jsonb, large objects, a materialized view and the app's own triggers. Four writers run a
random mix of writes (unique values handed between rows within and across transactions, key
updates, cascading deletes, partition moves, 10 000-row transactions, TRUNCATE, long open
transactions, savepoints rolled back, MERGE, COPY FROM, deletes and re-inserts of one key, large
objects, setval) while ``ferry pg capture install`` and ``ferry pg copy --follow`` run; the
follower is killed with SIGKILL at random moments and started again with ``ferry pg follow`` (a
random ``--batch``), watched through its status file. Then the writers stop, the follower must
catch up, a transaction is left open across the fence, the fence goes up, the log is drained to
the marker, sequences, keyless tables and large objects are synced, and the two databases are
compared by this harness's own comparator (per table an md5 of its rows in one order and a count,
every sequence's state and parameters, every large object): never ferry's verify. The fence is
lowered, capture removed, and the source's catalog must be what it was before the install. Every
committed writer transaction leaves a ledger row: none may be missing on the target.

    .venv/bin/python bench/capture_chaos.py --runs 5 --seconds 30 --kills 3
    .venv/bin/python bench/capture_chaos.py --seeds 7,8 --seconds 60 --kills 6 --bindir /path/to/pg/bin
    .venv/bin/python bench/capture_chaos.py --seeds 1 --without ci-slug,range-key   # past known failures
    .venv/bin/python bench/capture_chaos.py --seeds 1 --copy-kills 2 --scale 4      # kill the copy too
    .venv/bin/python bench/capture_chaos.py --seeds 1 --target-role owner          # no session_replication_role
    .venv/bin/python bench/capture_chaos.py --attacks          # write paths that slip past capture

ferry is driven as a child process (``python -m migration ...``, from ``--ferry-root``, default this
checkout). The fence has no command of its own: its steps are library calls, all in one adapter
(:func:`bench.chaos.ferry_driver.ferry_freeze`), run in a child process too (this script with
``--adapter``). Exit 0 only when every seed ended identical. The harness is the package
``bench/chaos/`` (its ``__init__`` lists the modules); this script only calls it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos.cli import main  # noqa: E402

# What the reductions in bench/.work import from here.
from bench.chaos.comparator import compare  # noqa: E402
from bench.chaos.databases import clusters  # noqa: E402
from bench.chaos.ferry_driver import Ferry, error_line  # noqa: E402
from bench.chaos.outcome import Options  # noqa: E402
from bench.chaos.report import report  # noqa: E402
from bench.chaos.seed import run_seed  # noqa: E402

__all__ = ["Ferry", "Options", "clusters", "compare", "error_line", "main", "report", "run_seed"]

if __name__ == "__main__":
    sys.exit(main())

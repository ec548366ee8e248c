"""The change-capture chaos harness behind ``bench/capture_chaos.py`` and ``bench/capture_attacks.py``.

- :mod:`~bench.chaos.schema`: the app-like schema, its initial rows and its ``--without`` features;
- :mod:`~bench.chaos.writer_base`, :mod:`~bench.chaos.handoffs`, :mod:`~bench.chaos.writes`,
  :mod:`~bench.chaos.writers`: the random writers and their ledger;
- :mod:`~bench.chaos.ferry_driver`: ferry's command line as a child process, and the one adapter
  that calls its library (the freeze); :mod:`~bench.chaos.follower`: the follower, killed and
  started again;
- :mod:`~bench.chaos.comparator`: the source/target compare, independent of ferry's verify;
  :mod:`~bench.chaos.catalog`: the source's catalog before install and after remove;
- :mod:`~bench.chaos.databases`, :mod:`~bench.chaos.outcome`, :mod:`~bench.chaos.seed`: one seed;
  :mod:`~bench.chaos.report`: what a run prints; :mod:`~bench.chaos.cli`: its command line;
- :mod:`~bench.chaos.attack_hooks`, :mod:`~bench.chaos.attack_cases`, :mod:`~bench.chaos.attacks`:
  the capture-bypass scenarios.
"""

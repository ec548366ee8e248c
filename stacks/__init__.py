"""The Pulumi program's components: network, database, storage, cache, cutover, runner and its secrets.

Light to import: the components load Pulumi and the provider SDKs only when
``stacks.program`` (or a component module) is imported, as ``__main__.py`` does. The
typed config is :mod:`migration.stackconfig`, re-exported by :mod:`stacks.config`.
"""

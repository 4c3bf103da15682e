"""``dirac-docs-mcp sources``: the DIRAC doc sets a user fetches and keeps current.

- :mod:`.registry`: the five known doc sets, the ones a user added, and what was synced;
- :mod:`.fetch`: shallow, sparse git fetches (or a plain folder) into the data dir;
- :mod:`.select`: the files taken from a checkout, copied into the folder that is indexed;
- :mod:`.commands`: DIRAC's command reference rebuilt statically from its scripts.

Nothing here opens the index: the CLI indexes each synced folder as a root with the doc
set's name as key prefix (``DIRAC/docs/...``, the keys of the shared snapshot).
"""

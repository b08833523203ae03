"""``python -m imgstore.apps.web STORE [STORE ...]``: the same as ``imgstore serve``."""

from .cli import main

raise SystemExit(main())

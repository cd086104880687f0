"""``python -m toybandit.atlas``: print the loss atlas (``--help`` for files and figures)."""

from . import main

raise SystemExit(main())

"""`python -m tensorlogic.lsp`: the language server over stdio (the same as `tl lsp`)."""

import sys

from . import main

sys.exit(main())

from __future__ import annotations

from sor.cli import main

raise SystemExit(main())

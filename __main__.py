from jfx.cli import main

raise SystemExit(main())

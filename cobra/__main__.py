from cobra.cli import main

raise SystemExit(main())

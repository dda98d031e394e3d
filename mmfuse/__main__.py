from mmfuse.cli import main

raise SystemExit(main())

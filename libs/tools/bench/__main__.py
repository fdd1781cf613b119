from libs.tools.bench.scenarios import main

raise SystemExit(main())

from libs.bench.scenarios import main

raise SystemExit(main())

"""``python -m keycrm_bridge.simulator --port 8089 --seed-skus 100 …``"""

import sys

from keycrm_bridge.simulator.server import main

if __name__ == "__main__":
    sys.exit(main())

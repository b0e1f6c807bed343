"""Start the Spread Advisor web page on 127.0.0.1 (ADVISOR_UI_PORT, default 7860).

On a fresh machine the index is built in the background on first run (progress in this
terminal and in the page); questions asked meanwhile get a clear "still building" reply.
"""

import logging

from advisor.web.app import launch

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every loopback request
    launch()

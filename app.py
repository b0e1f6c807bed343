"""Start the Spread Advisor: builds the index on first run, then the conversation.

Until the web page lands this runs the terminal chat (`advisor chat`), which builds the index
first (with a progress bar) when none exists.
"""

from advisor.cli import app

if __name__ == "__main__":
    app(["chat"])

"""``python -m envmon.simulate.platforms``: serve the simulated platforms until interrupted."""

from envmon.simulate.platforms.server import main

main()

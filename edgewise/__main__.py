"""`python -m edgewise` is the `edgewise` command (how the runtime starts its workers)."""
from edgewise.cli.app import main

main()

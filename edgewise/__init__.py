"""edgewise: run deep learning where compute is scarce.

Layers (imports point down this list, never up): graph, hardware, cost, plan, sim,
runtime, codecs, offload, testbed, zoo, apps, cli.  See ../shared/DESIGN.md.
"""
__version__ = "0.1.0"

"""vhnode: the information node of a Zorg- en Veiligheidshuis federation."""

__version__ = "0.1.0"

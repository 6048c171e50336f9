"""An example desk package holding one user strategy (see docs/strategies.md)."""

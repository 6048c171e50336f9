"""Order-flow detectors (SPEC section 2: F18-F23 and market-maker behaviour) as per-event cores."""

from engine.detectors.base import Detector, DetectorContext

__all__ = ["Detector", "DetectorContext"]

"""camhub.testing: device simulators, test media and the adapter conformance kit.

Installed with ``pip install camhub[testing]``. The simulators speak the vendors' real wire
formats on 127.0.0.1 so that adapters, the hub and ``camhub demo`` run against them with no
hardware; the conformance kit (:mod:`camhub.testing.kit`) is what a provider subclasses to prove
a new adapter integrates (R-10.2).
"""

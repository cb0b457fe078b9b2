"""A local fake of the five REST APIs that the Singer taps are tested and benchmarked against.

The sandbox reads the wire contracts independently of the taps (it never imports them), so
a misreading on one side shows up as a failing test instead of agreeing with itself.
"""

from api_sandbox.faults import Fault, RequestLog
from api_sandbox.sandbox import Sandbox

__all__ = ["Fault", "RequestLog", "Sandbox"]

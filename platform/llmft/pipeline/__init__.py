"""The end-to-end demo (`make demo`, `jobs/pipeline.py`): the whole lifecycle on the tiny model.

Stage modules register themselves in order on import; `run_demo` runs them.
"""

from llmft.pipeline import foundation  # noqa: F401,I001  (imports register stages, in this order)
from llmft.pipeline import data, models, serving  # noqa: F401,E402
from llmft.pipeline.core import STAGES, DemoContext, run_demo

__all__ = ["DemoContext", "STAGES", "run_demo"]

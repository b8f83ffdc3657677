"""The end-to-end demo (`make demo`, `python -m llmft.demo`): the whole lifecycle on the tiny model.

Stage modules register themselves in order on import; `run_demo` runs them.
"""

from llmft.demo.pipeline import foundation_stages  # noqa: F401,I001  (imports register stages, in this order)
from llmft.demo.pipeline import data_stages, model_stages, release_stages  # noqa: F401,E402
from llmft.demo.pipeline.conductor import STAGES, DemoContext, run_demo

__all__ = ["DemoContext", "STAGES", "run_demo"]

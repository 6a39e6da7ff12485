"""The utility model: one configured helper model for small structured tasks (run names,
natural language → shell, summaries), shared by every feature that needs one."""

from codeyard.utility_model.call import Answer, UtilityModelError, structured
from codeyard.utility_model.config import UtilityModelConfig

__all__ = ["Answer", "UtilityModelConfig", "UtilityModelError", "structured"]

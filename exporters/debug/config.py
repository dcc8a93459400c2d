from typing import Literal

from otelml.configmodel import ComponentConfig


class DebugConfig(ComponentConfig):
    verbosity: Literal["basic", "normal", "detailed"] = "basic"

from otelml.component import Kind
from otelml.extensions.zpages.config import ZPagesConfig
from otelml.extensions.zpages.extension import ZPages
from otelml.registry import Factory

factory = Factory(type="zpages", kind=Kind.EXTENSION, config_class=ZPagesConfig, create=ZPages)

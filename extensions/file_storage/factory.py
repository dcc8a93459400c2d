from otelml.component import Kind
from otelml.extensions.file_storage.config import FileStorageConfig
from otelml.extensions.file_storage.extension import FileStorage
from otelml.registry import Factory

factory = Factory(type="file_storage", kind=Kind.EXTENSION, config_class=FileStorageConfig, create=FileStorage, stability="alpha")

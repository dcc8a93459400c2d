from otelml.component import Kind
from otelml.extensions.health_check.config import HealthCheckConfig
from otelml.extensions.health_check.extension import HealthCheck
from otelml.registry import Factory

factory = Factory(type="health_check", kind=Kind.EXTENSION, config_class=HealthCheckConfig, create=HealthCheck, stability="beta")

from otelml.component import Kind
from otelml.extensions.bearertokenauth.config import BearerTokenAuthConfig
from otelml.extensions.bearertokenauth.extension import BearerTokenAuth
from otelml.registry import Factory

factory = Factory(
    type="bearertokenauth", kind=Kind.EXTENSION, config_class=BearerTokenAuthConfig, create=BearerTokenAuth, stability="beta"
)

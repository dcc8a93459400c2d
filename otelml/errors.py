"""Errors that travel back up a pipeline, as the collector's consumererror.

A consumer (processor or exporter) raises :class:`PermanentError` when the
data can never be accepted (retrying cannot help) and :class:`RetryableError`
when the same data may be accepted later. Receivers map them onto their
protocol: OTLP gRPC INVALID_ARGUMENT vs UNAVAILABLE/RESOURCE_EXHAUSTED, HTTP
400 vs 503/429, Kafka skip vs pause-and-retry, MQTT drop vs no-ack.
Any other exception is treated as retryable, as in the collector.
"""


class ConsumerError(Exception):
    """Base class of errors returned by a consumer."""


class PermanentError(ConsumerError):
    """The data was rejected for good; sending it again would fail again."""


class RetryableError(ConsumerError):
    """The data was not accepted now but may be later.

    Parameters
    ----------
    message
        What went wrong.
    retry_after
        Seconds the sender should wait before trying again, if known
        (from gRPC RetryInfo or an HTTP Retry-After header).
    throttled
        True when the refusal is back-pressure (memory limit, full queue):
        OTLP receivers then answer RESOURCE_EXHAUSTED / 429 instead of
        UNAVAILABLE / 503.
    """

    def __init__(self, message: str, retry_after: float | None = None, throttled: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled


def is_permanent(error: BaseException) -> bool:
    return isinstance(error, PermanentError)

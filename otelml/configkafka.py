"""Kafka connection settings shared by the Kafka receiver and exporter, as the collector's ``configkafka``."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import SecretStr, field_validator

from otelml.configmodel import ComponentConfig
from otelml.tlsconfig import ClientTLSConfig

# What Kafka accepts as a topic name (besides "." and "..").
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def topic_problem(topic: str) -> str | None:
    """Why a broker would refuse ``topic`` as a topic name, or None.

    >>> topic_problem("otlp_logs") is None, topic_problem("")
    (True, 'must not be empty')
    >>> print(topic_problem("app logs"))
    'app logs' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, and not . or ..)
    """
    if not topic:
        return "must not be empty"
    if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        return f"{topic!r} is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, and not . or ..)"
    return None


class SASLConfig(ComponentConfig):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str = ""
    password: SecretStr = SecretStr("")

    def validate_config(self) -> list[str]:
        problems = []
        if not self.username:
            problems.append("username: required for SASL")
        if not self.password.get_secret_value():
            problems.append("password: required for SASL")
        return problems


class AuthConfig(ComponentConfig):
    sasl: SASLConfig | None = None

    unsupported_keys = {
        "tls": "configure TLS at the top level of the component (tls:), as current collectors do",
        "plain_text": "use sasl with mechanism: PLAIN",
        "kerberos": "Kerberos is not supported: use sasl (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
    }


class KafkaClientConfig(ComponentConfig):
    """Where the brokers are and how to authenticate to them."""

    brokers: list[str] = ["localhost:9092"]
    client_id: str = "otelml"
    auth: AuthConfig = AuthConfig()
    # Present (and not ``insecure``) means the connection uses TLS.
    tls: ClientTLSConfig | None = None

    unsupported_keys = {
        "protocol_version": "the client negotiates the protocol version with the brokers: remove it",
        "resolve_canonical_bootstrap_servers_only": "not supported: list the brokers' addresses in brokers",
        "metadata": "the client refreshes the cluster metadata itself: remove it",
        "rack_id": "rack-aware fetching is not supported: remove it",
        "conn_idle_timeout": "the client manages its connections: remove it",
    }

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value):
        # One string of comma-separated addresses, as ${env:KAFKA_BROKERS} gives.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def validate_config(self) -> list[str]:
        problems = []
        if not self.brokers:
            problems.append("brokers: at least one broker address is required")
        for index, broker in enumerate(self.brokers):
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                problems.append(f"brokers::{index}: {broker!r} is not host:port")
        return problems

    def client_options(self) -> dict:
        """Keyword arguments for aiokafka's producer, consumer and admin clients."""
        use_tls = self.tls is not None and not self.tls.insecure
        sasl = self.auth.sasl
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.brokers),
            "client_id": self.client_id,
            "security_protocol": ("SASL_SSL" if use_tls else "SASL_PLAINTEXT") if sasl else ("SSL" if use_tls else "PLAINTEXT"),
        }
        if self.tls is not None and use_tls:
            options["ssl_context"] = self.tls.ssl_context()
        if sasl:
            options.update(
                sasl_mechanism=sasl.mechanism,
                sasl_plain_username=sasl.username,
                sasl_plain_password=sasl.password.get_secret_value(),
            )
        return options

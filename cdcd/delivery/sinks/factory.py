"""The sink a session writes to, and the destination checks made before a slot exists."""

from __future__ import annotations

import structlog

from cdcd.config import Config, converter_settings
from cdcd.converters import JSON_CONVERTER, ConverterSettings, RecordConverter
from cdcd.delivery.sinks import Sink
from cdcd.delivery.sinks.converting import ConvertingSink
from cdcd.errors import SinkUnavailable

log = structlog.get_logger("cdcd.daemon")


def make_sink(config: Config) -> Sink:
    sink: Sink
    if config.sink == "stdout":
        from cdcd.delivery.sinks.stdout import StdoutSink

        sink = StdoutSink()
    else:
        from cdcd.delivery.sinks.kafka import KafkaSink

        sink = KafkaSink(config.bootstrap_servers, config.effective_transactional_id,
                         properties=dict(config.kafka), timeout_s=config.kafka_timeout_ms / 1000.0,
                         oversized_policy=config.oversized_record_policy, overlap=config.commit_overlap,
                         begin_gap_s=config.commit_gap_ms / 1000.0,
                         dead_letter_topic=config.oversized_record_dead_letter_topic or f"{config.topic_prefix}.dlq")
    converter = record_converter(config)
    return sink if converter.identity else ConvertingSink(sink, converter)


def record_converter(config: Config) -> RecordConverter:
    """The key/value converters; the stdout sink prints JSON lines, so only JsonConverter applies to it."""
    key, value = converter_settings(config)
    if config.sink == "stdout":
        key, value = (s if s.class_name == JSON_CONVERTER else ConverterSettings(s.is_key) for s in (key, value))
    return RecordConverter(key, value)


def check_registries(config: Config) -> None:
    """Log the converters' warnings; exit like a broker that is down when a schema registry cannot be reached."""
    for settings in converter_settings(config):
        for warning in settings.warnings:
            log.warning("converter_option_ignored", detail=warning)
        if settings.is_avro and config.sink == "kafka":
            from cdcd.converters.avro import check_registry

            problem = check_registry(settings)
            if problem is not None:
                raise SinkUnavailable(f"cannot reach the schema registry of {settings.side}.converter: {problem}")

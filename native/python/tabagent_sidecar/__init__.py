"""TabAgent's transformers sidecar: serves one Hugging Face model folder over a small OpenAI-compatible HTTP API
on 127.0.0.1, for the daemon to supervise and proxy (see docs/architecture.md, "The transformers sidecar")."""

PROTOCOL_VERSION = 1

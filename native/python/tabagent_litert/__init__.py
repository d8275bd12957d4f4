"""TabAgent's LiteRT engine: serves one .litertlm or LLM .task bundle with LiteRT-LM over the same private HTTP
surface as the transformers sidecar (tabagent_sidecar.server, imported read-only)."""

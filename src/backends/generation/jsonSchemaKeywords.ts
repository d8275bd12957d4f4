/**
 * The JSON Schema subset the in-process engines enforce when they constrain decoding (node-llama-cpp through
 * llama.cpp grammars, ONNX through JsonSchemaMatcher): one list, so both accept and refuse the same schemas.
 */
export const SCHEMA_CONSTRAINTS: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "minLength",
  "maxLength",
  "enum",
  "const",
  "oneOf",
  "anyOf",
  "format",
  "$ref",
  "$defs",
  "definitions",
]);

/** Annotations: they describe, they do not constrain, so a constraint may leave them out. */
export const SCHEMA_ANNOTATIONS: ReadonlySet<string> = new Set([
  "title",
  "description",
  "$schema",
  "$id",
  "$comment",
  "examples",
  "default",
  "deprecated",
  "readOnly",
  "writeOnly",
]);

/** Past this a schema is refused: its grammar or matcher would be slow to build and to sample with. */
export const MAX_SCHEMA_BYTES = 64 * 1024;

/**
 * A small JSON Schema 2020-12 validator for the keywords the OpenAPI document uses, so tests can check real
 * responses against the document itself (not only against the zod schemas it came from). A keyword it does not
 * know is an error, so a document that starts using one cannot pass unchecked.
 */

type Schema = { [key: string]: unknown };

const ANNOTATIONS = new Set(["description", "title", "default", "examples", "deprecated", "readOnly", "writeOnly", "format"]);
const KNOWN = new Set([
  ...ANNOTATIONS,
  "$ref",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "propertyNames",
  "items",
  "anyOf",
  "oneOf",
  "allOf",
  "const",
  "enum",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
]);

/** Resolves `#/a/b` in `root`. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) throw new Error(`not a local reference: ${ref}`);
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !(key in node)) throw new Error(`unresolved reference: ${ref}`);
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

/** Every problem found, as `path: message`; empty when the value is valid. */
export function validateJsonSchema(root: unknown, schema: Schema, value: unknown, path = "$"): string[] {
  const errors: string[] = [];
  for (const key of Object.keys(schema)) if (!KNOWN.has(key)) errors.push(`${path}: unsupported keyword '${key}'`);
  if (typeof schema.$ref === "string") errors.push(...validateJsonSchema(root, resolvePointer(root, schema.$ref) as Schema, value, path));
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => hasType(value, t))) errors.push(`${path}: expected ${types.join("|")}, got ${typeOf(value)}`);
  }
  if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${path}: expected ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (typeof schema.maximum === "number" && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) errors.push(`${path}: not above ${schema.exclusiveMinimum}`);
    if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) errors.push(`${path}: not below ${schema.exclusiveMaximum}`);
  }
  if (typeof value === "string") {
    // JSON Schema counts string length in code points, not UTF-16 units.
    const length = [...value].length;
    if (typeof schema.minLength === "number" && length < schema.minLength) errors.push(`${path}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === "number" && length > schema.maxLength) errors.push(`${path}: longer than ${schema.maxLength}`);
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) errors.push(`${path}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) errors.push(`${path}: more than ${schema.maxItems} items`);
    if (schema.items && typeof schema.items === "object") {
      value.forEach((item, i) => errors.push(...validateJsonSchema(root, schema.items as Schema, item, `${path}[${i}]`)));
    }
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const name of (schema.required ?? []) as string[]) if (!(name in object)) errors.push(`${path}: missing '${name}'`);
    for (const [name, v] of Object.entries(object)) {
      const property = properties[name];
      if (property) errors.push(...validateJsonSchema(root, property, v, `${path}.${name}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected '${name}'`);
      else if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        errors.push(...validateJsonSchema(root, schema.additionalProperties as Schema, v, `${path}.${name}`));
      }
    }
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const branches = schema[key];
    if (!Array.isArray(branches)) continue;
    const passing = branches.filter((b) => validateJsonSchema(root, b as Schema, value, path).length === 0).length;
    if (key === "anyOf" ? passing === 0 : passing !== 1) errors.push(`${path}: ${passing} of the ${key} branches match`);
  }
  if (Array.isArray(schema.allOf)) for (const b of schema.allOf) errors.push(...validateJsonSchema(root, b as Schema, value, path));
  return errors;
}

/** Keywords anywhere in a schema that `validateJsonSchema` does not implement, as `path: keyword`. */
export function unsupportedKeywords(schema: Schema, path = "$"): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(schema)) {
    if (!KNOWN.has(key)) out.push(`${path}: ${key}`);
    if (key === "properties") {
      for (const [name, sub] of Object.entries(value as Record<string, Schema>)) out.push(...unsupportedKeywords(sub, `${path}.${name}`));
    } else if (key === "items" || key === "propertyNames" || (key === "additionalProperties" && typeof value === "object")) {
      out.push(...unsupportedKeywords(value as Schema, `${path}/${key}`));
    } else if (key === "anyOf" || key === "oneOf" || key === "allOf") {
      (value as Schema[]).forEach((sub, i) => out.push(...unsupportedKeywords(sub, `${path}/${key}/${i}`)));
    }
  }
  return out;
}

import type { HttpMethod, JsonSchema, OpenApiDocument, OpenApiOperation, OpenApiResponse, Ref } from "./buildOpenApiDocument.js";

/**
 * The OpenAPI document as one readable HTML page: operations, parameters, request fields, responses and schemas.
 * Rendered on the server, with no script, font or stylesheet from anywhere: the daemon may run with no network,
 * and the page's only links point inside itself.
 */
export function renderDocsPage(doc: OpenApiDocument): string {
  const operations = listOperations(doc);
  const out: string[] = [];
  out.push(
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(doc.info.title)} API</title><style>${STYLE}</style></head><body>`,
    `<h1>${esc(doc.info.title)} API <small>${esc(doc.info.version)} · OpenAPI ${esc(doc.openapi)}</small></h1>`,
    `<p>${inline(doc.info.description)}</p>`,
    '<p>The machine-readable document is at <a href="openapi.json"><code>/openapi.json</code></a>.</p>',
    "<nav><ul>",
  );
  for (const { method, path, op } of operations) {
    out.push(`<li><a href="#op-${esc(op.operationId)}"><span class="m m-${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></a> ${esc(op.summary)}</li>`);
  }
  out.push("</ul></nav>");
  for (const { method, path, op } of operations) out.push(renderOperation(doc, method, path, op));
  out.push("<h2>Schemas</h2>");
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    out.push(`<section id="schema-${esc(name)}"><h3>${esc(name)}</h3>`);
    if (typeof schema.description === "string") out.push(`<p>${inline(schema.description)}</p>`);
    out.push(renderFields(doc, schema), "</section>");
  }
  out.push("</body></html>");
  return out.join("\n");
}

const STYLE = `
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
h1 small{font-size:.5em;color:#666;font-weight:normal}
section{border-top:1px solid #ddd;margin-top:1.5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;vertical-align:top;padding:.25rem .5rem;border-bottom:1px solid #eee}
th{background:#f6f6f6}
code{font:13px ui-monospace,monospace;background:#f3f3f3;padding:0 .2em;border-radius:3px}
.m{display:inline-block;min-width:3.5em;font:bold 12px ui-monospace,monospace;color:#fff;padding:.1em .4em;border-radius:3px;text-align:center}
.m-get{background:#2b7a3d}.m-post{background:#1f5fa8}.m-delete{background:#a8321f}
.req{color:#b00}
nav ul{list-style:none;padding:0}
`;

interface Listed {
  method: HttpMethod;
  path: string;
  op: OpenApiOperation;
}

function listOperations(doc: OpenApiDocument): Listed[] {
  const out: Listed[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "delete"] as const) {
      const op = item[method];
      if (op) out.push({ method, path, op });
    }
  }
  return out;
}

function renderOperation(doc: OpenApiDocument, method: HttpMethod, path: string, op: OpenApiOperation): string {
  const out: string[] = [];
  out.push(`<section id="op-${esc(op.operationId)}">`);
  out.push(`<h2><span class="m m-${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h2>`);
  out.push(`<p><strong>${esc(op.summary)}</strong></p>`);
  if (op.description) out.push(`<p>${inline(op.description)}</p>`);
  if (op.parameters?.length) {
    out.push("<h3>Parameters</h3><table><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr>");
    for (const p of op.parameters) {
      out.push(
        `<tr><td><code>${esc(p.name)}</code>${p.required ? ' <span class="req">required</span>' : ""}</td><td>${esc(p.in)}</td>` +
          `<td>${typeText(p.schema)}</td><td>${inline(p.description ?? "")}</td></tr>`,
      );
    }
    out.push("</table>");
  }
  if (op.requestBody) {
    for (const [type, media] of Object.entries(op.requestBody.content)) {
      out.push(`<h3>Request body <small><code>${esc(type)}</code></small>: ${typeText(media.schema)}</h3>`);
      out.push(renderFields(doc, resolve(doc, media.schema)));
    }
  }
  out.push("<h3>Responses</h3><table><tr><th>Status</th><th>Description</th><th>Content</th></tr>");
  for (const [status, value] of Object.entries(op.responses)) {
    const response = resolveResponse(doc, value);
    const content = Object.entries(response.content ?? {})
      .map(([type, media]) => {
        const event = media["x-tabagent-event-schema"];
        return `<code>${esc(type)}</code>: ${typeText(media.schema)}${event ? `, each event ${typeText(event)}` : ""}`;
      })
      .join("<br>");
    out.push(`<tr><td>${esc(status)}</td><td>${inline(response.description)}</td><td>${content}</td></tr>`);
  }
  out.push("</table></section>");
  return out.join("\n");
}

/** A table of an object's properties, nested objects and arrays of objects flattened as `a.b` and `a[].b`. */
function renderFields(doc: OpenApiDocument, schema: JsonSchema): string {
  const rows: string[] = [];
  collectFields(doc, schema, "", rows, 0);
  if (rows.length === 0) return `<p>${typeText(schema)}</p>`;
  return `<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>${rows.join("")}</table>`;
}

function collectFields(doc: OpenApiDocument, schema: JsonSchema, prefix: string, rows: string[], depth: number): void {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties || depth > 3) return;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  for (const [name, prop] of Object.entries(properties)) {
    const path = prefix + name;
    const description = typeof prop.description === "string" ? inline(prop.description) : "";
    rows.push(
      `<tr><td><code>${esc(path)}</code>${required.has(name) ? ' <span class="req">required</span>' : ""}</td>` +
        `<td>${typeText(prop)}</td><td>${description}</td></tr>`,
    );
    // Expand inline objects only; a $ref has its own section.
    if (prop.properties) collectFields(doc, prop, `${path}.`, rows, depth + 1);
    const items = prop.items as JsonSchema | undefined;
    if (items?.properties) collectFields(doc, items, `${path}[].`, rows, depth + 1);
  }
}

/** A one-line description of a schema's type, with links to referenced components. */
function typeText(schema: JsonSchema | Ref | undefined, depth = 0): string {
  if (!schema || depth > 4) return "any";
  const s = schema as JsonSchema;
  if (typeof s.$ref === "string") {
    const name = s.$ref.split("/").at(-1) ?? s.$ref;
    return `<a href="#schema-${esc(name)}">${esc(name)}</a>`;
  }
  if ("const" in s) return `<code>${esc(JSON.stringify(s.const))}</code>`;
  if (Array.isArray(s.enum)) return s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(" | ");
  const union = (s.anyOf ?? s.oneOf) as JsonSchema[] | undefined;
  if (Array.isArray(union)) return union.map((u) => typeText(u, depth + 1)).join(" | ") + constraints(s);
  const type = s.type;
  if (Array.isArray(type)) return type.map((t) => esc(String(t))).join(" | ") + constraints(s);
  if (type === "array") {
    const items = s.items as JsonSchema | undefined;
    const text = typeText(items, depth + 1);
    return `array of ${items?.anyOf || items?.oneOf ? `(${text})` : text}${constraints(s)}`;
  }
  if (type === "object") {
    const props = Object.entries((s.properties ?? {}) as Record<string, JsonSchema>);
    // A discriminator is worth showing inline: `object {role: "user", content, name}`.
    const fields = props.map(([name, p]) => ("const" in p ? `${esc(name)}: <code>${esc(JSON.stringify(p.const))}</code>` : esc(name)));
    if (fields.length > 0) return `object {${fields.join(", ")}}`;
    if (s.additionalProperties && typeof s.additionalProperties === "object") {
      return `map of ${typeText(s.additionalProperties as JsonSchema, depth + 1)}`;
    }
    return "object";
  }
  if (typeof type === "string") return esc(type) + constraints(s);
  return "any";
}

const BOUNDS: [key: string, label: string][] = [
  ["minimum", "≥"],
  ["exclusiveMinimum", ">"],
  ["maximum", "≤"],
  ["exclusiveMaximum", "<"],
  ["minLength", "min length"],
  ["maxLength", "max length"],
  ["minItems", "min items"],
  ["maxItems", "max items"],
];

function constraints(s: JsonSchema): string {
  const parts: string[] = [];
  for (const [key, label] of BOUNDS) {
    const v = s[key];
    // ±2^53-1 is how zod says "a safe integer": not worth showing.
    if (typeof v === "number" && Math.abs(v) < Number.MAX_SAFE_INTEGER) parts.push(`${label} ${v}`);
  }
  return parts.length ? ` <small>(${esc(parts.join(", "))})</small>` : "";
}

function resolve(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  const target = typeof schema.$ref === "string" ? doc.components.schemas[schema.$ref.split("/").at(-1) ?? ""] : undefined;
  return target ?? schema;
}

function resolveResponse(doc: OpenApiDocument, value: OpenApiResponse | Ref): OpenApiResponse {
  if ("$ref" in value) return doc.components.responses[value.$ref.split("/").at(-1) ?? ""] ?? { description: value.$ref };
  return value;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Escapes, then shows `backticks` as code. */
function inline(text: string): string {
  return esc(text).replace(/`([^`]+)`/g, "<code>$1</code>");
}
